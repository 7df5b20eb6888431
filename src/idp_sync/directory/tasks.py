"""Celery entry points of Directory Sync (``sync`` queue).

A SCIM write commits directory events, the worker's work. The unit of work also commits
an outbox row per event, published after commit, for ``idp_sync.directory.sync``; the
event-loop paths (the member PATCH, ``POST /Users``) write none, and ask for
``idp_sync.directory.sync_pending``, which drains every pending event oldest first
(requests are coalesced, and beat runs it on a schedule as a safety net), as sign-ins are
drained. Both fold in whole directories' pending events, so whichever runs first does the
work and the other finds it done.
"""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy.exc import DBAPIError

from idp_sync.context import correlation_id
from idp_sync.directory import sync
from idp_sync.runtime import Runtime
from idp_sync.tasks import DbTask, request_sequencing, request_task

log = logging.getLogger(__name__)

# Transactions one drain runs before it hands over to a new message (other tasks queued
# on ``sync`` meanwhile get their turn).
RUN_LIMIT = 50
DRAIN_TASK = "idp_sync.directory.sync_pending"


def request_drain(runtime: Runtime) -> None:
    """After an event-loop commit that wrote directory events (and events, or their
    reservation): ask for the drain and for the sequencer, off the request path."""
    if runtime.celery is not None:
        request_task(runtime.celery, DRAIN_TASK, queue="sync")
        request_sequencing(runtime.celery)


@shared_task(bind=True, base=DbTask, name="idp_sync.directory.sync", queue="sync")
def sync_directory_event(task: DbTask, event_id: str) -> str:
    """Fold the directory event ``event_id`` (and its directory's other pending events)
    into the memberships it affects. Idempotent: an event already folded in is skipped;
    transient database errors are retried by ``DbTask`` and the transaction starts over."""
    with task.ctx.transaction(completes=True) as session:
        synced = sync.process_pending(session, event_id)
    if synced is None:
        return "skipped"
    log.info("directory event synced", extra={"event_id": event_id, "users": synced})
    return "done"


@shared_task(bind=True, base=DbTask, name=DRAIN_TASK, queue="sync")
def sync_pending(task: DbTask) -> int:
    """Fold pending directory events, oldest first, one directory's batch per transaction
    (``sync.process_pending``). A directory whose batch fails for a reason other than the
    database (which ``DbTask`` retries) is left for a later run, logged, its events still
    pending, so that it cannot hold up the others. Returns how many directory users were
    synced."""
    synced, failed = 0, list[str]()
    for _ in range(RUN_LIMIT):
        pending: sync.PendingEvent | None = None
        try:
            with task.ctx.transaction() as session:
                pending = sync.take_pending_event(session, failed)
                if pending is None:
                    return synced
                token = correlation_id.set(pending.correlation_id)  # the SCIM request's
                try:
                    synced += sync.process_pending(session, pending.id) or 0
                finally:
                    correlation_id.reset(token)
        except DBAPIError:
            raise  # retried by DbTask; the transaction kept nothing
        except Exception:
            if pending is None:
                raise
            log.exception(
                "directory events not synced; left pending",
                extra={"event_id": pending.id, "directory_id": pending.directory_id},
            )
            failed.append(pending.directory_id)
    request_task(task.app, task.name, queue="sync")  # more may be waiting
    return synced
