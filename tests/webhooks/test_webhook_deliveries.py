"""Deliveries to a real HTTP receiver, through the API, the sequencer and a real worker
(issue 7 points 3 and 8): signed so that the SDK's ``verify_event`` accepts them, retried
with backoff, one row per (event, endpoint), in order per object, retried on demand."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa
from hookfixtures import *  # noqa: F403
from prometheus_client import REGISTRY

from conftest import API_KEY, unique, wait_for
from idp_sync.webhooks.models import WebhookDelivery

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _deliveries(live, endpoint_id: str, **params) -> list[dict]:
    answer = httpx.get(
        f"{live.url}/webhook_endpoints/{endpoint_id}/deliveries",
        params={"limit": 100, **params},
        headers=HEADERS,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def _attempts_metric(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "idp_sync_webhook_delivery_attempts_total", {"outcome": outcome}
    )
    return value or 0.0


def _slug_of(body: bytes) -> str | None:
    import json

    return json.loads(body)["data"].get("slug")


def test_a_real_receiver_gets_events_the_sdk_verifies(
    hooks_live, hooks_worker, hooks_sdk, make_endpoint, receiver, caplog
) -> None:
    caplog.set_level(logging.INFO)
    name = unique("verified")
    endpoint = make_endpoint(["permission.created"], name=name)
    slug = unique("hooked")
    permission = hooks_sdk.authorization.create_permission(slug=slug, name="Hooked")

    (request,) = wait_for(lambda: [r for r in receiver.at(name) if _slug_of(r.body) == slug])
    assert request.headers["Content-Type"] == "application/json"
    event = hooks_sdk.webhooks.verify_event(
        event_body=request.body,
        event_signature=request.headers["WorkOS-Signature"],
        secret=endpoint.secret,
    )
    assert event.event == "permission.created"
    assert event.id.startswith("event_")
    assert event.data.id == permission.id

    # The body is the event exactly as GET /events shows it (a stable id to dedupe on).
    listed = httpx.get(
        f"{hooks_live.url}/events",
        params={"events": "permission.created", "limit": 100, "order": "desc"},
        headers=HEADERS,
    ).json()["data"]
    assert [e for e in listed if e["id"] == event.id] == [request.event]

    (delivery,) = wait_for(
        lambda: _deliveries(hooks_live, endpoint.id, event_id=event.id, state="delivered")
    )
    assert delivery["object"] == "webhook_delivery"
    assert delivery["id"].startswith("wd_")
    assert (delivery["event"], delivery["attempt_count"]) == ("permission.created", 1)
    assert [(a["number"], a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [
        (1, "delivered", 200)
    ]
    assert delivery["delivered_at"] is not None and delivery["next_attempt_at"] is None

    # Never the secret in logs (API and worker log lines alike).
    assert any("webhook" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert endpoint.secret not in record.getMessage()
        assert endpoint.secret not in repr(record.__dict__)


def test_a_receiver_failing_twice_gets_one_delivery_after_three_attempts(
    hooks_live, hooks_worker, hooks_sdk, make_endpoint, receiver, engine
) -> None:
    name = unique("flaky")
    slug = unique("flaky")
    seen: Counter[str] = Counter()

    def respond(path: str, body: bytes) -> int:
        if path != f"/{name}" or _slug_of(body) != slug:
            return 200
        seen[slug] += 1
        return 500 if seen[slug] == 1 else 503 if seen[slug] == 2 else 200

    receiver.respond = respond
    endpoint = make_endpoint(["permission.created"], name=name)
    before = {o: _attempts_metric(o) for o in ("retrying", "delivered")}
    hooks_sdk.authorization.create_permission(slug=slug, name="Flaky")

    mine = lambda: [r for r in receiver.at(name) if _slug_of(r.body) == slug]  # noqa: E731
    wait_for(lambda: len(mine()) >= 3 and mine()[-1].status == 200)
    requests = mine()
    assert [r.status for r in requests] == [500, 503, 200]
    assert len({r.body for r in requests}) == 1  # the same bytes on every attempt
    event_id = requests[0].event["id"]
    for request in requests:  # each attempt is signed afresh, and verifies
        hooks_sdk.webhooks.verify_event(
            event_body=request.body,
            event_signature=request.headers["WorkOS-Signature"],
            secret=endpoint.secret,
        )

    (delivery,) = wait_for(
        lambda: _deliveries(hooks_live, endpoint.id, event_id=event_id, state="delivered")
    )
    assert delivery["attempt_count"] == 3
    assert [(a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [
        ("failed", 500),
        ("failed", 503),
        ("delivered", 200),
    ]
    assert delivery["attempts"][0]["error"] == "HTTP 500"
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(WebhookDelivery.state, WebhookDelivery.attempt_count).where(
                WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint_id == endpoint.id
            )
        ).all()
    assert rows == [("delivered", 3)]
    assert _attempts_metric("retrying") - before["retrying"] >= 2
    assert _attempts_metric("delivered") - before["delivered"] >= 1


def test_deliveries_of_one_object_keep_their_order_under_concurrent_changes(
    hooks_live, hooks_worker, hooks_sdk, make_endpoint, receiver, engine
) -> None:
    name = unique("ordered")
    slugs = [unique("ord") for _ in range(3)]
    lock = threading.Lock()
    delivered: dict[str, list[str]] = defaultdict(list)  # permission id -> event ids, as received
    refused: set[str] = set()

    def respond(path: str, body: bytes) -> int:
        import json

        event = json.loads(body)
        if path != f"/{name}" or event["data"].get("slug") not in slugs:
            return 200
        with lock:
            # Refuse the first attempt of about half the events: without the ordering key,
            # their retries would be overtaken by the later events of the same object.
            if (
                int(hashlib.sha256(event["id"].encode()).hexdigest(), 16) % 2
                and event["id"] not in refused
            ):
                refused.add(event["id"])
                return 503
            delivered[event["data"]["id"]].append(event["id"])
        return 200

    receiver.respond = respond
    endpoint = make_endpoint(["permission.updated"], name=name)
    ids = [hooks_sdk.authorization.create_permission(slug=s, name="v0").id for s in slugs]
    changes = [(slug, f"v{n}") for n in range(1, 6) for slug in slugs]
    with ThreadPoolExecutor(6) as pool:  # concurrent changes, several to each object
        list(
            pool.map(lambda c: hooks_sdk.authorization.update_permission(c[0], name=c[1]), changes)
        )

    wait_for(lambda: sum(len(delivered[i]) for i in ids) >= len(changes), timeout=90)
    assert refused  # some deliveries had to be retried
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(WebhookDelivery.ordering_key, WebhookDelivery.event_id)
            .where(
                WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.ordering_key.in_(ids)
            )
            .order_by(WebhookDelivery.event_seq)
        ).all()
    stream: dict[str, list[str]] = defaultdict(list)
    for key, event_id in rows:
        stream[key].append(event_id)
    for permission_id in ids:
        assert len(stream[permission_id]) == 5
        assert delivered[permission_id] == stream[permission_id]  # stream order, once each


def test_a_failed_delivery_can_be_retried_on_demand(
    hooks_live, hooks_worker, hooks_sdk, make_endpoint, receiver, engine
) -> None:
    name = unique("down")
    slug = unique("down")
    up = threading.Event()
    receiver.respond = lambda path, body: 200 if up.is_set() or _slug_of(body) != slug else 500
    endpoint = make_endpoint(["permission.created"], name=name)
    hooks_sdk.authorization.create_permission(slug=slug, name="Down")

    first = wait_for(lambda: [r for r in receiver.at(name) if _slug_of(r.body) == slug])[0]
    event_id = first.event["id"]
    # Pretend the retry period is over: the next failure gives up.
    with engine.begin() as conn:
        conn.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint_id == endpoint.id)
            .values(expires_at=sa.func.now() - sa.text("interval '1 second'"))
        )
    (failed,) = wait_for(
        lambda: _deliveries(hooks_live, endpoint.id, event_id=event_id, state="failed")
    )
    assert failed["attempt_count"] >= 1
    assert {a["outcome"] for a in failed["attempts"]} == {"failed"}
    assert failed["last_status_code"] == 500

    up.set()
    retry_url = f"{hooks_live.url}/webhook_endpoints/{endpoint.id}/deliveries/{failed['id']}/retry"
    answer = httpx.post(retry_url, headers={**HEADERS, "Idempotency-Key": unique("retry")})
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "pending"
    (done,) = wait_for(
        lambda: _deliveries(hooks_live, endpoint.id, event_id=event_id, state="delivered")
    )
    assert done["attempt_count"] == failed["attempt_count"] + 1
    assert done["attempts"][-1]["outcome"] == "delivered"
    assert [a["number"] for a in done["attempts"]] == list(range(1, done["attempt_count"] + 1))

    again = httpx.post(retry_url, headers=HEADERS)
    assert again.status_code == 409
    assert again.json()["code"] == "already_delivered"
    missing = httpx.post(retry_url.replace(failed["id"], "wd_missing"), headers=HEADERS)
    assert missing.status_code == 404
    bad_state = httpx.get(
        f"{hooks_live.url}/webhook_endpoints/{endpoint.id}/deliveries",
        params={"state": "lost"},
        headers=HEADERS,
    )
    assert bad_state.status_code == 422
