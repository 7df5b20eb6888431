"""Writing and reading events. An event is written in the transaction of its change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.events.models import Event
from idp_sync.ids import new_id


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
