"""The life of one delivery: ``claim`` (a lease, in a short transaction), the POST (made by
the task with no transaction open), ``record`` (delivered; or a retry scheduled with
exponential backoff and jitter; or ``failed`` once the retry period is over).

Deliveries of one object to one endpoint go one at a time, in stream order: a delivery
whose predecessor (same ``ordering_key``, smaller ``event_seq``) is pending waits, and the
predecessor releases it when it is done, delivered or failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp_sync.config import Settings, get_settings
from idp_sync.context import current_correlation_id
from idp_sync.db import is_postgres, utcnow
from idp_sync.events.api import serialize as serialize_event
from idp_sync.events.models import Event, OutboxMessage
from idp_sync.ids import new_id
from idp_sync.tasks import enqueue
from idp_sync.webhooks import signing
from idp_sync.webhooks.models import (
    DELIVERED,
    DISABLED,
    ENABLED,
    FAILED,
    PENDING,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)

log = logging.getLogger(__name__)

DELIVER_TASK = "idp_sync.webhooks.deliver"
QUEUE = "webhooks"
FAILING = "failing"  # disabled_reason of an endpoint we disabled
# Retries due sooner than this are also sent to the broker with a countdown; later ones
# are left to beat's outbox sweeper (no message waits for hours inside a worker).
DIRECT_SCHEDULE_MAX_SECONDS = 300.0


def settings_of(session: Session) -> Settings:
    runtime = session.info.get("runtime")
    return runtime.settings if runtime is not None else get_settings()


@dataclass(frozen=True)
class Attempt:
    """Everything one POST needs, read in the claim's transaction."""

    delivery_id: str
    endpoint_id: str
    event_id: str
    url: str
    secret: str
    body: bytes

    def __repr__(self) -> str:  # never the secret
        return f"Attempt(delivery_id={self.delivery_id!r}, endpoint_id={self.endpoint_id!r})"


@dataclass(frozen=True)
class Outcome:
    attempted_at: dt.datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Later:
    """A deliver message to publish after commit with ``countdown`` (or left to the sweeper)."""

    message: OutboxMessage
    countdown: float | None


@dataclass(frozen=True)
class Claim:
    attempt: Attempt | None
    reason: str  # "claimed", or why nothing is sent now
    later: Later | None = None


def locked_delivery(session: Session, delivery_id: str) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    if is_postgres(session):
        query = query.with_for_update()
    return session.scalar(query)


def claim(session: Session, delivery_id: str, *, lease_seconds: float) -> Claim:
    """Take the delivery for one attempt, if it is pending, its endpoint enabled, no attempt
    in flight, and no earlier delivery of the same object pending."""
    now = utcnow()
    delivery = locked_delivery(session, delivery_id)
    if delivery is None:
        return Claim(None, "gone")
    if delivery.state != PENDING:
        return Claim(None, delivery.state)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or endpoint.status != ENABLED:
        return Claim(None, "held")  # resumed when the endpoint is enabled again
    if delivery.locked_until is not None and delivery.locked_until > now:
        # Another attempt is in flight; look again when its lease ends (its worker may die).
        return Claim(None, "busy", schedule(session, delivery.id, at=delivery.locked_until))
    if _earlier_pending(session, delivery):
        return Claim(None, "waiting")  # the earlier delivery releases this one when done
    event = session.get(Event, delivery.event_id)
    if event is None:
        return Claim(None, "gone")
    delivery.locked_until = now + dt.timedelta(seconds=lease_seconds)
    attempt = Attempt(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        event_id=event.id,
        url=endpoint.endpoint_url,
        secret=endpoint.secret,
        body=signing.payload(serialize_event(event)),
    )
    return Claim(attempt, "claimed")


def _earlier_pending(session: Session, delivery: WebhookDelivery) -> bool:
    if delivery.ordering_key is None:
        return False
    earlier = session.scalar(
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.endpoint_id == delivery.endpoint_id,
            WebhookDelivery.ordering_key == delivery.ordering_key,
            WebhookDelivery.event_seq < delivery.event_seq,
            WebhookDelivery.state == PENDING,
        )
        .limit(1)
    )
    return earlier is not None


def record(
    session: Session,
    delivery_id: str,
    outcome: Outcome,
    *,
    settings: Settings,
    rng: random.Random | None = None,
) -> Later | None:
    """Write the attempt's outcome: delivered, retried after a backoff, or failed for good
    once the retry period is over (and the endpoint disabled if nothing got through for a
    whole period). Returns the retry to publish after commit, if any."""
    delivery = locked_delivery(session, delivery_id)
    if delivery is None:  # the endpoint was deleted meanwhile
        return None
    now = utcnow()
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    delivery.attempt_count += 1
    session.add(
        WebhookDeliveryAttempt(
            delivery_id=delivery.id,
            number=delivery.attempt_count,
            attempted_at=outcome.attempted_at,
            duration_ms=outcome.duration_ms,
            outcome=DELIVERED if outcome.ok else FAILED,
            status_code=outcome.status_code,
            error=outcome.error,
        )
    )
    if delivery.state == DELIVERED:  # a duplicate attempt whose lease had run out
        return None
    delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error
    delivery.locked_until, delivery.updated_at = None, now
    if outcome.ok:
        delivery.state, delivery.delivered_at = DELIVERED, now
        if endpoint is not None:
            endpoint.failing_since = None
        _release_successor(session, delivery)
        return None
    if endpoint is not None and endpoint.failing_since is None:
        endpoint.failing_since = now
    delay = signing.backoff_seconds(
        delivery.attempt_count,
        base=settings.webhook_backoff_base_seconds,
        cap=settings.webhook_backoff_max_seconds,
        rng=rng,
    )
    retry_at = now + dt.timedelta(seconds=delay)
    if retry_at <= delivery.expires_at:
        delivery.next_attempt_at = retry_at
        return schedule(session, delivery.id, at=retry_at)
    delivery.state = FAILED
    log.warning(
        "webhook delivery failed for good",
        extra={"delivery_id": delivery.id, "attempts": delivery.attempt_count},
    )
    if endpoint is not None:
        _disable_if_failing(endpoint, now, settings)
    _release_successor(session, delivery)
    return None


def _disable_if_failing(endpoint: WebhookEndpoint, now: dt.datetime, settings: Settings) -> None:
    period = dt.timedelta(seconds=settings.webhook_retry_period_seconds)
    since = endpoint.failing_since
    if endpoint.status == ENABLED and since is not None and since <= now - period:
        endpoint.status, endpoint.disabled_reason, endpoint.updated_at = DISABLED, FAILING, now
        log.warning("webhook endpoint disabled: failing", extra={"endpoint_id": endpoint.id})


def _release_successor(session: Session, delivery: WebhookDelivery) -> None:
    """Enqueue the next pending delivery of the same object to the same endpoint."""
    if delivery.ordering_key is None:
        return
    successor = session.scalar(
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.endpoint_id == delivery.endpoint_id,
            WebhookDelivery.ordering_key == delivery.ordering_key,
            WebhookDelivery.event_seq > delivery.event_seq,
            WebhookDelivery.state == PENDING,
        )
        .order_by(WebhookDelivery.event_seq)
        .limit(1)
    )
    if successor is not None:
        enqueue(session, DELIVER_TASK, queue=QUEUE, delivery_id=successor)


def schedule(session: Session, delivery_id: str, *, at: dt.datetime) -> Later:
    """A deliver message due at ``at``, durable in the outbox: sent by the caller with a
    countdown when soon, else published by beat's outbox sweeper once due."""
    countdown = max(0.0, (at - utcnow()).total_seconds())
    direct = countdown <= DIRECT_SCHEDULE_MAX_SECONDS
    grace = dt.timedelta(seconds=settings_of(session).sweeper_threshold_seconds if direct else 0)
    message = OutboxMessage(
        id=new_id("outbox"),
        task_name=DELIVER_TASK,
        kwargs={"delivery_id": delivery_id},
        queue=QUEUE,
        correlation_id=current_correlation_id(),
        available_at=at + grace,
        published_count=1 if direct else 0,
    )
    session.add(message)
    return Later(message, countdown if direct else None)
