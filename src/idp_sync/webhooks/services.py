"""Webhook use cases: endpoints, the transactional fan-out, retries on demand.

A delivery is created ``pending`` by ``fan_out``, a sequencer hook, in the transaction
that gives its event a position; ``deliveries`` carries it from there.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp_sync.config import Settings
from idp_sync.db import is_postgres, utcnow
from idp_sync.errors import Conflict, NotFound, Unprocessable
from idp_sync.events.models import Event
from idp_sync.ids import new_id
from idp_sync.tasks import enqueue
from idp_sync.webhooks import destinations, signing
from idp_sync.webhooks.catalog import KNOWN_EVENTS
from idp_sync.webhooks.deliveries import DELIVER_TASK, QUEUE, locked_delivery, settings_of
from idp_sync.webhooks.models import (
    DELIVERED,
    DISABLED,
    ENABLED,
    PENDING,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)

log = logging.getLogger(__name__)

_CHUNK = 500


# --- endpoints ------------------------------------------------------------------------


def _checked_events(events: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(events))
    if not names:
        raise Unprocessable(
            "events must name at least one event",
            errors=[{"code": "events_required", "field": "events"}],
        )
    unknown = [n for n in names if n not in KNOWN_EVENTS]
    if unknown:
        raise Unprocessable(
            f"unknown event names: {', '.join(unknown)}",
            errors=[{"code": "invalid_event", "field": "events", "value": n} for n in unknown],
        )
    return names


def _checked_url(session: Session, url: str, settings: Settings, *, current: str = "") -> str:
    if len(url) > 2048:
        raise Unprocessable(
            "endpoint_url is too long",
            errors=[{"code": "invalid_endpoint_url", "field": "endpoint_url"}],
        )
    url = destinations.check_registration(
        url, allow_private=settings.webhook_allow_private_destinations
    )
    taken = session.scalar(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.endpoint_url == url, WebhookEndpoint.id != current
        )
    )
    if taken is not None:
        raise Conflict("a webhook endpoint with this URL already exists", code="duplicate_endpoint")
    return url


def create_endpoint(
    session: Session, *, endpoint_url: str, events: Sequence[str], settings: Settings
) -> WebhookEndpoint:
    """Register an endpoint; its ``secret`` is readable on the returned object only."""
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=new_id("webhook_endpoint"),
        endpoint_url=_checked_url(session, endpoint_url, settings),
        secret=signing.new_secret(),
        status=ENABLED,
        events=_checked_events(events),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    log.info("webhook endpoint created", extra={"endpoint_id": endpoint.id})
    return endpoint


def get_endpoint(session: Session, endpoint_id: str, *, lock: bool = False) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if lock and is_postgres(session):
        query = query.with_for_update()
    endpoint = session.scalar(query)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return endpoint


def update_endpoint(
    session: Session,
    endpoint_id: str,
    *,
    endpoint_url: str | None,
    status: str | None,
    events: Sequence[str] | None,
    settings: Settings,
) -> WebhookEndpoint:
    """Change the URL, the events or the status; enabling again resumes held deliveries."""
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    if status is not None and status not in (ENABLED, DISABLED):
        raise Unprocessable(
            "status must be enabled or disabled",
            errors=[{"code": "invalid_status", "field": "status"}],
        )
    if endpoint_url is not None:
        endpoint.endpoint_url = _checked_url(session, endpoint_url, settings, current=endpoint.id)
    if events is not None:
        endpoint.events = _checked_events(events)
    if status == DISABLED:
        endpoint.status, endpoint.disabled_reason = DISABLED, None
    elif status == ENABLED and endpoint.status != ENABLED:
        _enable(session, endpoint, settings)
    endpoint.updated_at = utcnow()
    return endpoint


def _enable(session: Session, endpoint: WebhookEndpoint, settings: Settings) -> None:
    now = utcnow()
    endpoint.status, endpoint.disabled_reason, endpoint.failing_since = ENABLED, None, None
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.state == PENDING)
        .values(
            next_attempt_at=now,
            expires_at=now + dt.timedelta(seconds=settings.webhook_retry_period_seconds),
        )
    )
    pending = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.state == PENDING)
        .order_by(WebhookDelivery.event_seq)
    )
    heads: set[str] = set()
    for delivery in pending:
        key = delivery.ordering_key
        if key is None or key not in heads:
            enqueue(session, DELIVER_TASK, queue=QUEUE, delivery_id=delivery.id)
        if key is not None:
            heads.add(key)
    log.info("webhook endpoint enabled", extra={"endpoint_id": endpoint.id})


def delete_endpoint(session: Session, endpoint_id: str) -> None:
    """Delete the endpoint; its deliveries go with it (ON DELETE CASCADE), and their queued
    messages find nothing to do."""
    endpoint = get_endpoint(session, endpoint_id)
    session.delete(endpoint)
    log.info("webhook endpoint deleted", extra={"endpoint_id": endpoint_id})


# --- fan-out (a sequencer hook) -------------------------------------------------------


def fan_out(session: Session, events: list[Event]) -> None:
    """One pending delivery per (event, enabled endpoint subscribed to its name), in the
    sequencer's transaction; idempotent if it runs again for the same events. Only the
    first pending delivery of each (endpoint, object) is enqueued: the rest wait their turn.
    """
    endpoints = list(
        session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.status == ENABLED))
    )
    if not endpoints or not events:
        return
    period = dt.timedelta(seconds=settings_of(session).webhook_retry_period_seconds)
    existing = _existing_pairs(session, [e.id for e in events])
    keys = {e.id: signing.ordering_key(e.event, e.data or {}) for e in events}
    busy = _pending_keys(session, [p.id for p in endpoints], {k for k in keys.values() if k})
    now = utcnow()
    created = 0
    for event in sorted(events, key=lambda e: e.seq or 0):
        key = keys[event.id]
        for endpoint in endpoints:
            if event.event not in endpoint.events or (event.id, endpoint.id) in existing:
                continue
            delivery = WebhookDelivery(
                id=new_id("delivery"),
                endpoint_id=endpoint.id,
                event_id=event.id,
                event_name=event.event,
                event_seq=event.seq,
                ordering_key=key,
                state=PENDING,
                attempt_count=0,
                next_attempt_at=now,
                expires_at=now + period,
                created_at=now,
                updated_at=now,
            )
            session.add(delivery)
            created += 1
            if key is None or (endpoint.id, key) not in busy:
                enqueue(session, DELIVER_TASK, queue=QUEUE, delivery_id=delivery.id)
            if key is not None:
                busy.add((endpoint.id, key))
    if created:
        session.flush()
        log.info("webhook deliveries created", extra={"deliveries": created})


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _existing_pairs(session: Session, event_ids: list[str]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for chunk in _chunks(event_ids):
        rows = session.execute(
            select(WebhookDelivery.event_id, WebhookDelivery.endpoint_id).where(
                WebhookDelivery.event_id.in_(chunk)
            )
        )
        pairs.update((row[0], row[1]) for row in rows)
    return pairs


def _pending_keys(
    session: Session, endpoint_ids: list[str], keys: set[str]
) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for chunk in _chunks(sorted(keys)):
        rows = session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.ordering_key)
            .where(
                WebhookDelivery.state == PENDING,
                WebhookDelivery.endpoint_id.in_(endpoint_ids),
                WebhookDelivery.ordering_key.in_(chunk),
            )
            .distinct()
        )
        found.update((row[0], row[1]) for row in rows)
    return found


# --- retry on demand, reads -----------------------------------------------------------


def get_delivery(session: Session, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    return delivery


def retry_now(
    session: Session, endpoint_id: str, delivery_id: str, *, settings: Settings
) -> WebhookDelivery:
    """Attempt a failed (or still pending) delivery again now, with a fresh retry period."""
    endpoint = get_endpoint(session, endpoint_id)
    get_delivery(session, endpoint_id, delivery_id)
    delivery = locked_delivery(session, delivery_id)
    assert delivery is not None
    if endpoint.status != ENABLED:
        raise Conflict(
            "the webhook endpoint is disabled; enable it first", code="endpoint_disabled"
        )
    if delivery.state == DELIVERED:
        raise Conflict("the delivery was already delivered", code="already_delivered")
    if delivery.locked_until is not None and delivery.locked_until > utcnow():
        raise Conflict("an attempt of this delivery is in flight", code="attempt_in_flight")
    now = utcnow()
    delivery.state, delivery.next_attempt_at = PENDING, now
    delivery.expires_at = now + dt.timedelta(seconds=settings.webhook_retry_period_seconds)
    delivery.updated_at = now
    enqueue(session, DELIVER_TASK, queue=QUEUE, delivery_id=delivery.id)
    return delivery


def attempts_of(
    session: Session, delivery_ids: list[str]
) -> dict[str, list[WebhookDeliveryAttempt]]:
    found: dict[str, list[WebhookDeliveryAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        rows = session.scalars(
            select(WebhookDeliveryAttempt)
            .where(WebhookDeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookDeliveryAttempt.delivery_id, WebhookDeliveryAttempt.number)
        )
        for row in rows:
            found[row.delivery_id].append(row)
    return found
