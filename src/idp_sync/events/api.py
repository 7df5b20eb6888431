"""HTTP: ``GET /events``, as ``workos.events.list_events`` calls it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.errors import Unprocessable
from idp_sync.events.models import Event
from idp_sync.events.sequencer import SEQUENCE_BATCH, assign_sequence
from idp_sync.wire import PageParams, iso, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["events"])
SessionDep = Annotated[Session, Depends(session_of)]


def serialize(e: Event) -> dict[str, object]:
    return {
        "object": "event",
        "id": e.id,
        "event": e.event,
        "data": e.data,
        "created_at": iso(e.created_at),
        "context": None,
    }


@router.get("/events")
def list_events(
    session: SessionDep,
    events: str | None = None,
    organization_id: str | None = None,
    after: str | None = None,
    before: str | None = None,
    limit: int = 10,
    order: str = "asc",
    range_start: dt.datetime | None = None,
    range_end: dt.datetime | None = None,
) -> JSONResponse:
    """Events in stream order (oldest first by default): an app polls with ``after`` = the
    last id it saw and never misses one (positions are gapless, see events.sequencer)."""
    page = PageParams(limit=limit, before=before, after=after, order=order)  # type: ignore[arg-type]
    # What has committed is listed now, worker or not (a backlog is worked off in rounds).
    for _ in range(20):
        if len(assign_sequence(session)) < SEQUENCE_BATCH:
            break
    query = select(Event).where(Event.seq.is_not(None))
    names = [n for n in (events or "").split(",") if n]
    if names:
        query = query.where(Event.event.in_(names))
    if organization_id:
        query = query.where(Event.organization_id == organization_id)
    if range_start is not None:
        query = query.where(Event.created_at >= _utc(range_start))
    if range_end is not None:
        query = query.where(Event.created_at < _utc(range_end))
    rows, meta = paginate(
        session, query, Event.seq, page, cursor_value=lambda cursor: _position(session, cursor)
    )
    if page.order == "asc" and rows and meta["after"] is None:
        meta["after"] = rows[-1].id  # a poller keeps its place even at the end of the stream
    return respond(list_body([serialize(e) for e in rows], meta))


def _position(session: Session, event_id: str) -> int:
    seq = session.scalar(select(Event.seq).where(Event.id == event_id))
    if seq is None and event_id.startswith("event_"):
        # Purged by retention: resume after the newest older event still kept.
        older = select(func.max(Event.seq)).where(Event.id < event_id, Event.seq.is_not(None))
        seq = session.scalar(older) or 0
    if seq is None:
        raise Unprocessable(
            f"unknown event cursor '{event_id}'",
            errors=[{"code": "invalid_cursor", "field": "after"}],
        )
    return seq


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
