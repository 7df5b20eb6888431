"""Beat's sweeper: republish outbox messages that were never published or never finished."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp_sync.db import is_postgres, utcnow
from idp_sync.events.models import OutboxMessage
from idp_sync.tasks import DbTask, publish_pending

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


def claim_due_messages(session: Session, *, threshold_seconds: float) -> list[OutboxMessage]:
    """Pending messages whose ``available_at`` has passed, pushed back by one threshold.

    On PostgreSQL ``SKIP LOCKED`` lets two sweepers run at once without double work.
    """
    now = utcnow()
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.completed_at.is_(None), OutboxMessage.available_at <= now)
        .order_by(OutboxMessage.available_at)
        .limit(SWEEP_BATCH)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    messages = list(session.scalars(query))
    for message in messages:
        message.available_at = now + dt.timedelta(seconds=threshold_seconds)
        message.published_count += 1
    return messages


@shared_task(bind=True, base=DbTask, name="idp_sync.outbox.sweep", acks_late=False)
def sweep_outbox(task: DbTask) -> int:
    """Republish pending work (publish failed at commit, or the worker was lost)."""
    ctx = task.ctx
    threshold = ctx.runtime.settings.sweeper_threshold_seconds
    with ctx.transaction() as session:
        messages = claim_due_messages(session, threshold_seconds=threshold)
    sent = publish_pending(task.app, messages) if messages else 0
    if messages:
        log.info("outbox swept", extra={"due": len(messages), "published": sent})
    return sent
