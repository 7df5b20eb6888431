"""HTTP: webhook endpoints as the ``workos`` SDK's ``webhooks`` module calls them, and our
deliveries (attempts, outcomes, retry on demand) in the same style (DESIGN §5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.config import Settings
from idp_sync.errors import Unprocessable
from idp_sync.webhooks import schemas, services
from idp_sync.webhooks import serializers as ser
from idp_sync.webhooks.models import DELIVERED, FAILED, PENDING, WebhookDelivery, WebhookEndpoint
from idp_sync.wire import PageParams, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["webhooks"])
SessionDep = Annotated[Session, Depends(session_of)]
PageDep = Annotated[PageParams, Depends(PageParams)]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


SettingsDep = Annotated[Settings, Depends(settings_of)]


@router.post("/webhook_endpoints", status_code=201)
def create_webhook_endpoint(
    body: schemas.EndpointCreate, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    endpoint = services.create_endpoint(
        session, endpoint_url=body.endpoint_url, events=body.events, settings=settings
    )
    return respond(ser.endpoint(endpoint, reveal_secret=True), 201)


@router.get("/webhook_endpoints")
def list_webhook_endpoints(session: SessionDep, page: PageDep) -> JSONResponse:
    rows, meta = paginate(session, select(WebhookEndpoint), WebhookEndpoint.id, page)
    return respond(list_body([ser.endpoint(e) for e in rows], meta))


@router.get("/webhook_endpoints/{endpoint_id}")
def get_webhook_endpoint(endpoint_id: str, session: SessionDep) -> JSONResponse:
    return respond(ser.endpoint(services.get_endpoint(session, endpoint_id)))


@router.patch("/webhook_endpoints/{endpoint_id}")
def update_webhook_endpoint(
    endpoint_id: str, body: schemas.EndpointUpdate, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    endpoint = services.update_endpoint(
        session,
        endpoint_id,
        endpoint_url=body.endpoint_url,
        status=body.status,
        events=body.events,
        settings=settings,
    )
    return respond(ser.endpoint(endpoint))


@router.delete("/webhook_endpoints/{endpoint_id}", status_code=204)
def delete_webhook_endpoint(endpoint_id: str, session: SessionDep) -> Response:
    services.delete_endpoint(session, endpoint_id)
    return Response(status_code=204)


# --- deliveries (ours) ----------------------------------------------------------------


@router.get("/webhook_endpoints/{endpoint_id}/deliveries")
def list_deliveries(
    endpoint_id: str,
    session: SessionDep,
    page: PageDep,
    state: str | None = None,
    event_id: str | None = None,
) -> JSONResponse:
    """The endpoint's deliveries with their attempts, newest first (filter by ``state``)."""
    services.get_endpoint(session, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if state is not None:
        if state not in (PENDING, DELIVERED, FAILED):
            raise Unprocessable(
                "state must be one of pending, delivered, failed",
                errors=[{"code": "invalid_state", "field": "state"}],
            )
        query = query.where(WebhookDelivery.state == state)
    if event_id is not None:
        query = query.where(WebhookDelivery.event_id == event_id)
    rows, meta = paginate(session, query, WebhookDelivery.id, page)
    attempts = services.attempts_of(session, [d.id for d in rows])
    return respond(list_body([ser.delivery(d, attempts[d.id]) for d in rows], meta))


@router.get("/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}")
def get_delivery(endpoint_id: str, delivery_id: str, session: SessionDep) -> JSONResponse:
    delivery = services.get_delivery(session, endpoint_id, delivery_id)
    attempts = services.attempts_of(session, [delivery.id])
    return respond(ser.delivery(delivery, attempts[delivery.id]))


@router.post("/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}/retry", status_code=202)
def retry_delivery(
    endpoint_id: str, delivery_id: str, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Attempt a failed delivery again now (202: the attempt runs on the worker)."""
    delivery = services.retry_now(session, endpoint_id, delivery_id, settings=settings)
    attempts = services.attempts_of(session, [delivery.id])
    return respond(ser.delivery(delivery, attempts[delivery.id]), 202)
