"""Writing and reading events. An event is written in the transaction of its change."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.events.models import Event
from idp_sync.ids import new_id, new_ids


def record_event(
    session: Session, name: str, data: dict[str, Any], *, organization_id: str | None = None
) -> Event:
    """Add the event ``name`` with ``data`` (shaped as the SDK's event model) to the session."""
    event = Event(
        id=new_id("event"),
        event=name,
        data=data,
        organization_id=organization_id,
        created_at=utcnow(),
    )
    session.add(event)
    session.info["idp_sync.events_written"] = True  # see tasks.request_sequencing
    return event


def record_events(
    session: Session, name: str, items: list[dict[str, Any]], *, organization_id: str | None
) -> None:
    """Write many events ``name`` at once (one multi-row INSERT per thousand, no ORM
    objects): a 5,000-member SCIM PATCH writes 5,000 ``dsync.group.user_added`` events,
    and as ORM objects they cost most of the request."""
    if not items:
        return
    now = utcnow()
    rows = [
        {
            "id": event_id,
            "event": name,
            "data": data,
            "organization_id": organization_id,
            "created_at": now,
        }
        for event_id, data in zip(new_ids("event", len(items)), items, strict=True)
    ]
    session.execute(insert(cast(Table, Event.__table__)), rows)  # Core: no ORM work per row
    session.info["idp_sync.events_written"] = True  # see tasks.request_sequencing
