"""Celery entry point of SSO sign-ins (``sync`` queue)."""

from __future__ import annotations

import logging

from celery import shared_task

from idp_sync.sso import signin
from idp_sync.tasks import DbTask

log = logging.getLogger(__name__)


@shared_task(bind=True, base=DbTask, name="idp_sync.sso.sign_in", queue="sync")
def sign_in(task: DbTask, login_id: str) -> str:
    """Fold the validated sign-in ``login_id`` into its organization membership: create the
    user and membership just in time, recompute the roles (SSO source), write the events.
    Idempotent: a sign-in already folded in is skipped; transient database errors are
    retried by ``DbTask`` and the transaction starts over."""
    with task.ctx.transaction(completes=True) as session:
        outcome = signin.process_login(session, login_id)
    with task.ctx.transaction() as session:
        signin.purge_expired(session)
    log.info("sso sign-in folded", extra={"login_id": login_id, "outcome": outcome})
    return outcome
