"""Periodic clean-up: events past retention, old idempotency records, finished outbox rows."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from sqlalchemy import delete

from idp_sync.auth.idempotency import purge_expired
from idp_sync.db import utcnow
from idp_sync.events.models import Event, OutboxMessage
from idp_sync.tasks import DbTask


@shared_task(bind=True, base=DbTask, name="idp_sync.maintenance.purge", acks_late=False)
def purge(task: DbTask) -> dict[str, int]:
    """Delete what retention settings allow; safe to run any number of times."""
    settings = task.ctx.runtime.settings
    now = utcnow()
    with task.ctx.transaction() as session:
        events = session.execute(
            delete(Event).where(
                Event.seq.is_not(None),
                Event.created_at < now - dt.timedelta(days=settings.event_retention_days),
            )
        )
        outbox = session.execute(
            delete(OutboxMessage).where(OutboxMessage.completed_at < now - dt.timedelta(days=7))
        )
        idempotency = purge_expired(session, settings.idempotency_ttl_hours)
    return {
        "events": int(getattr(events, "rowcount", 0) or 0),
        "outbox": int(getattr(outbox, "rowcount", 0) or 0),
        "idempotency": idempotency,
    }
