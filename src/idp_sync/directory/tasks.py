"""Celery entry point of Directory Sync (``sync`` queue)."""

from __future__ import annotations

import logging

from celery import shared_task

from idp_sync.directory import sync
from idp_sync.tasks import DbTask

log = logging.getLogger(__name__)


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
