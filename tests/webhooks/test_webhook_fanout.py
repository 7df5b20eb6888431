"""The fan-out hook and a delivery's life, on the database directly (issue 7 point 3): one
row per (event, endpoint) even if the hook runs twice, only subscribed and enabled endpoints,
one delivery in flight per object, and an endpoint that keeps failing disabled then resumed."""

from __future__ import annotations

import datetime as dt
import itertools
import time

from hookfixtures import *  # noqa: F403
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conftest import free_port, unique
from idp_sync.config import Settings
from idp_sync.db import utcnow
from idp_sync.events.models import Event, OutboxMessage
from idp_sync.events.sequencer import SEQUENCED_HOOKS
from idp_sync.events.services import record_event
from idp_sync.webhooks import deliveries, services
from idp_sync.webhooks import tasks as webhook_tasks
from idp_sync.webhooks.models import WebhookDelivery, WebhookEndpoint

SETTINGS = Settings(IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=True)  # type: ignore[call-arg]
_seq = itertools.count(10**15 + int(time.time() * 1000) % 10**9)


def _endpoint(session: Session, events: list[str], status: str = "enabled") -> WebhookEndpoint:
    endpoint = services.create_endpoint(
        session,
        endpoint_url=f"http://127.0.0.1:{free_port()}/{unique('h')}",
        events=events,
        settings=SETTINGS,
    )
    endpoint.status = status
    return endpoint


def _events(session: Session, *specs: tuple[str, str]) -> list[Event]:
    """Events as the sequencer hands them to hooks: committed (here: flushed) and positioned."""
    made = [record_event(session, name, {"id": object_id}) for name, object_id in specs]
    for event in made:
        event.seq = next(_seq)
    session.flush()
    return made


def _queued(session: Session, delivery_ids: list[str]) -> list[str]:
    rows = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.task_name == deliveries.DELIVER_TASK)
        .order_by(OutboxMessage.id)
    )
    return [m.kwargs["delivery_id"] for m in rows if m.kwargs.get("delivery_id") in delivery_ids]


def _of(session: Session, endpoint: WebhookEndpoint) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
            .order_by(WebhookDelivery.event_seq)
        )
    )


def test_the_fan_out_is_registered_as_a_sequencer_hook() -> None:
    assert services.fan_out in SEQUENCED_HOOKS


def test_one_delivery_per_event_and_subscribed_enabled_endpoint_even_if_run_twice(
    session: Session,
) -> None:
    roles = _endpoint(session, ["role.created", "role.updated"])
    only_created = _endpoint(session, ["role.created"])
    disabled = _endpoint(session, ["role.created"], status="disabled")
    events = _events(
        session,
        ("role.created", unique("role")),
        ("role.updated", unique("role")),
        ("permission.created", unique("p")),
    )
    services.fan_out(session, events)
    services.fan_out(session, events)  # the hook ran again for the same events

    assert [(d.event_id, d.state, d.attempt_count) for d in _of(session, roles)] == [
        (events[0].id, "pending", 0),
        (events[1].id, "pending", 0),
    ]
    assert [d.event_id for d in _of(session, only_created)] == [events[0].id]
    assert _of(session, disabled) == []
    made = [d.id for d in _of(session, roles) + _of(session, only_created)]
    assert sorted(_queued(session, made)) == sorted(made)  # each enqueued once
    count = session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.event_id.in_([e.id for e in events]))
    )
    assert count == 3


def test_deliveries_of_one_object_wait_for_the_earlier_one(session: Session) -> None:
    endpoint = _endpoint(session, ["organization_membership.updated"])
    a, b = unique("om_a"), unique("om_b")
    events = _events(
        session,
        ("organization_membership.updated", a),
        ("organization_membership.updated", b),
        ("organization_membership.updated", a),
        ("organization_membership.updated", a),
    )
    services.fan_out(session, events)
    first_a, first_b, second_a, third_a = _of(session, endpoint)
    assert (first_a.ordering_key, second_a.ordering_key, first_b.ordering_key) == (a, a, b)
    ids = [first_a.id, first_b.id, second_a.id, third_a.id]
    assert _queued(session, ids) == [first_a.id, first_b.id]  # heads only

    assert deliveries.claim(session, second_a.id, lease_seconds=30).reason == "waiting"
    claimed = deliveries.claim(session, first_a.id, lease_seconds=30)
    assert claimed.reason == "claimed" and claimed.attempt is not None
    assert b'"organization_membership.updated"' in claimed.attempt.body
    busy = deliveries.claim(session, first_a.id, lease_seconds=30)
    assert busy.reason == "busy"  # in flight: looked at again when the lease ends
    assert busy.later is not None and 29 <= busy.later.countdown <= 30
    ok = deliveries.Outcome(utcnow(), 12, status_code=204)
    assert deliveries.record(session, first_a.id, ok, settings=SETTINGS) is None
    assert first_a.state == "delivered"
    # Released when done: the next of the same object is enqueued.
    assert _queued(session, ids) == [first_a.id, first_b.id, first_a.id, second_a.id]
    assert deliveries.claim(session, first_a.id, lease_seconds=30).reason == "delivered"
    # An attempt whose lease ran out reports late: recorded, but nothing is undone.
    late = deliveries.Outcome(utcnow(), 5, status_code=500, error="HTTP 500")
    assert deliveries.record(session, first_a.id, late, settings=SETTINGS) is None
    assert (first_a.state, first_a.last_status_code, first_a.attempt_count) == ("delivered", 204, 2)


def test_an_endpoint_failing_for_a_whole_period_is_disabled_and_can_be_enabled(
    session: Session,
) -> None:
    quick = Settings(  # type: ignore[call-arg]
        IDP_SYNC_WEBHOOK_RETRY_PERIOD_SECONDS=60,
        IDP_SYNC_WEBHOOK_BACKOFF_BASE_SECONDS=0.01,
        IDP_SYNC_WEBHOOK_BACKOFF_MAX_SECONDS=0.01,
        IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=True,
    )
    endpoint = _endpoint(session, ["role.updated"])
    key = unique("role")
    events = _events(session, ("role.updated", key), ("role.updated", key))
    session.info["runtime"] = type("R", (), {"settings": quick})()  # fan_out reads the period
    services.fan_out(session, events)
    first, second = _of(session, endpoint)
    down = deliveries.Outcome(utcnow(), 3, error="connection error (ConnectError)")

    later = deliveries.record(session, first.id, down, settings=quick)
    assert later is not None and 0 <= later.countdown <= 0.01  # retried soon, with backoff
    assert later.message.kwargs == {"delivery_id": first.id}
    assert (first.state, first.attempt_count, endpoint.status) == ("pending", 1, "enabled")
    # The retry period passes without a success (moved, not waited for: no test of
    # ours depends on how fast the machine is).
    first.expires_at = utcnow() - dt.timedelta(seconds=1)
    assert endpoint.failing_since is not None
    endpoint.failing_since -= dt.timedelta(seconds=61)
    assert deliveries.record(session, first.id, down, settings=quick) is None
    assert (first.state, first.attempt_count) == ("failed", 2)
    assert (endpoint.status, endpoint.disabled_reason) == ("disabled", "failing")
    assert deliveries.claim(session, second.id, lease_seconds=30).reason == "held"

    before = set(_queued(session, [second.id]))
    services.update_endpoint(
        session, endpoint.id, endpoint_url=None, status="enabled", events=None, settings=quick
    )
    assert (endpoint.status, endpoint.disabled_reason, endpoint.failing_since) == (
        "enabled",
        None,
        None,
    )
    assert len(_queued(session, [second.id])) == len(before) + 1  # held deliveries resume
    assert second.expires_at > utcnow()
    assert deliveries.claim(session, second.id, lease_seconds=30).reason == "claimed"


def test_private_destination_refused_at_delivery_time(receiver) -> None:
    """The URL was accepted when private destinations were allowed; the setting changed."""
    attempt = deliveries.Attempt("wd_x", "we_x", "event_x", receiver.url("inside"), "s3cret", b"{}")
    strict = Settings(IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=False)  # type: ignore[call-arg]
    outcome = webhook_tasks.post(attempt, strict)
    assert not outcome.ok
    assert outcome.error == (
        "destination refused: the host resolves to a private or loopback address"
    )
    assert receiver.received == []
    allowed = webhook_tasks.post(attempt, SETTINGS)
    assert allowed.ok and allowed.status_code == 200
    assert [r.body for r in receiver.at("inside")] == [b"{}"]


def test_timeouts_and_connection_errors_are_failed_attempts(receiver) -> None:
    closed = deliveries.Attempt(
        "wd_x", "we_x", "event_x", f"http://127.0.0.1:{free_port()}/", "s", b"{}"
    )
    outcome = webhook_tasks.post(closed, SETTINGS)
    assert (outcome.status_code, outcome.error) == (None, "connection error (ConnectError)")

    receiver.respond = lambda path, body: time.sleep(1.0) or 200
    slow = deliveries.Attempt("wd_x", "we_x", "event_x", receiver.url("slow"), "s", b"{}")
    impatient = Settings(  # type: ignore[call-arg]
        IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=True, IDP_SYNC_WEBHOOK_TIMEOUT_SECONDS=0.2
    )
    outcome = webhook_tasks.post(slow, impatient)
    assert (outcome.status_code, outcome.error) == (None, "timeout (ReadTimeout)")
    assert outcome.duration_ms < 900
