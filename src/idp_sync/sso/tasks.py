"""Celery entry points of SSO sign-ins (``sync`` queue).

A sign-in's login row is its message: the ACS commits it and asks for
``idp_sync.sso.sign_ins``, which folds in every pending sign-in (requests are coalesced,
and beat runs it on a schedule as a safety net). Workers running it at once take
different rows (``signin.take_pending_login``).
"""

from __future__ import annotations

import logging

from celery import shared_task

from idp_sync.context import correlation_id
from idp_sync.sso import signin
from idp_sync.tasks import DbTask, request_task

log = logging.getLogger(__name__)

# Sign-ins one run folds in before it hands over to a new message (other tasks queued
# on ``sync`` meanwhile get their turn).
RUN_LIMIT = 500


@shared_task(bind=True, base=DbTask, name="idp_sync.sso.sign_ins", queue="sync")
def sign_ins(task: DbTask) -> int:
    """Fold pending sign-ins into their organization memberships, oldest first, each in a
    transaction of its own: create the user and membership just in time, recompute the
    roles (SSO source), write the events. Returns how many were folded in."""
    done = 0
    while done < RUN_LIMIT:
        with task.ctx.transaction() as session:
            pending = signin.take_pending_login(session)
            if pending is None:
                break
            login_id, cid = pending
            token = correlation_id.set(cid)  # the ACS request's, in this sign-in's logs
            try:
                outcome = signin.process_login(session, login_id)
                log.info("sso sign-in folded", extra={"login_id": login_id, "outcome": outcome})
            finally:
                correlation_id.reset(token)
        done += 1
    else:
        request_task(task.app, task.name, queue="sync")  # more may be waiting
    if done:
        with task.ctx.transaction() as session:
            signin.purge_expired(session)
    return done


@shared_task(bind=True, base=DbTask, name="idp_sync.sso.sign_in", queue="sync")
def sign_in(task: DbTask, login_id: str) -> str:
    """One sign-in by id: messages written before sign-ins were taken from their rows
    (outbox rows of an upgraded deployment) still arrive here. Idempotent."""
    with task.ctx.transaction(completes=True) as session:
        outcome = signin.process_login(session, login_id)
    log.info("sso sign-in folded", extra={"login_id": login_id, "outcome": outcome})
    return outcome
