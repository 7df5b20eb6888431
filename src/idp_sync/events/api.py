"""HTTP: ``GET /events``, as ``workos.events.list_events`` calls it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.events.models import Event
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
    """Events oldest first by default, so an app polls with ``after`` = the last id it saw."""
    page = PageParams(limit=limit, before=before, after=after, order=order)  # type: ignore[arg-type]
    query = select(Event)
    names = [n for n in (events or "").split(",") if n]
    if names:
        query = query.where(Event.event.in_(names))
    if organization_id:
        query = query.where(Event.organization_id == organization_id)
    if range_start is not None:
        query = query.where(Event.created_at >= _utc(range_start))
    if range_end is not None:
        query = query.where(Event.created_at < _utc(range_end))
    rows, meta = paginate(session, query, Event.id, page)
    if page.order == "asc" and rows and meta["after"] is None:
        meta["after"] = rows[-1].id  # a poller keeps its place even at the end of the stream
    return respond(list_body([serialize(e) for e in rows], meta))


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
