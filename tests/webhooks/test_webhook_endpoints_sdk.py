"""Webhook endpoints through the official ``workos`` SDK (issue 7 point 2): the secret is
shown once, event names are checked against the SDK's list, bad input gets WorkOS errors."""

from __future__ import annotations

import httpx
import pytest
from hookfixtures import *  # noqa: F403
from workos._errors import ConflictError, NotFoundError, UnprocessableEntityError
from workos.common.models.webhook_endpoint_status import WebhookEndpointStatus

from conftest import API_KEY, unique

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def test_create_shows_the_secret_once(hooks_sdk, make_endpoint, receiver) -> None:
    created = make_endpoint(["role.created", "permission.created", "role.created"])
    assert created.object == "webhook_endpoint"
    assert created.id.startswith("we_")
    assert created.endpoint_url.startswith(f"http://127.0.0.1:{receiver.port}/")
    assert created.status == WebhookEndpointStatus.ENABLED
    assert created.events == ["role.created", "permission.created"]  # deduplicated, in order
    assert len(created.secret) >= 32
    assert created.created_at.utcoffset().total_seconds() == 0

    listed = hooks_sdk.webhooks.list_webhook_endpoints(limit=100)
    (again,) = [e for e in listed.data if e.id == created.id]
    assert again.endpoint_url == created.endpoint_url
    assert created.secret not in again.secret
    assert again.secret.endswith(created.secret[-4:])  # a hint, not the secret


def test_update_events_url_and_status(hooks_sdk, make_endpoint, receiver) -> None:
    created = make_endpoint(["role.created"])
    new_url = receiver.url(unique("moved"))
    updated = hooks_sdk.webhooks.update_webhook_endpoint(
        created.id, endpoint_url=new_url, events=["role.updated", "role.deleted"]
    )
    assert (updated.endpoint_url, updated.events) == (new_url, ["role.updated", "role.deleted"])
    assert created.secret not in updated.secret
    assert updated.updated_at >= created.updated_at
    disabled = hooks_sdk.webhooks.update_webhook_endpoint(created.id, status="disabled")
    assert disabled.status == WebhookEndpointStatus.DISABLED
    assert disabled.events == ["role.updated", "role.deleted"]
    enabled = hooks_sdk.webhooks.update_webhook_endpoint(created.id, status="enabled")
    assert enabled.status == WebhookEndpointStatus.ENABLED


def test_unknown_event_names_are_refused(hooks_live, hooks_sdk, make_endpoint, receiver) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        hooks_sdk.webhooks.create_webhook_endpoint(
            endpoint_url=receiver.url(unique("x")), events=["role.created", "role.exploded"]
        )
    assert caught.value.status_code == 422
    answer = httpx.post(
        f"{hooks_live.url}/webhook_endpoints",
        json={"endpoint_url": receiver.url(unique("x")), "events": ["nope.nope"]},
        headers=HEADERS,
    )
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "invalid_request_parameters"
    assert body["errors"] == [{"code": "invalid_event", "field": "events", "value": "nope.nope"}]
    created = make_endpoint(["role.created"])
    with pytest.raises(UnprocessableEntityError):
        hooks_sdk.webhooks.update_webhook_endpoint(created.id, events=["role.exploded"])
    with pytest.raises(UnprocessableEntityError):
        hooks_sdk.webhooks.update_webhook_endpoint(created.id, events=[])
    with pytest.raises(UnprocessableEntityError):
        hooks_sdk.webhooks.update_webhook_endpoint(created.id, status="paused")


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint_url": "not a url", "events": ["role.created"]},
        {"endpoint_url": "ftp://example.com/x", "events": ["role.created"]},
        {"endpoint_url": "https://example.com/x"},
        {"endpoint_url": "https://example.com/x", "events": "role.created"},
        {"events": ["role.created"]},
        {"endpoint_url": "https://example.com/x", "events": []},
    ],
)
def test_bad_bodies_are_422_never_500(hooks_live, body) -> None:
    answer = httpx.post(f"{hooks_live.url}/webhook_endpoints", json=body, headers=HEADERS)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_request_parameters"


def test_private_destinations_are_refused_by_default(sdk) -> None:
    """The shared ``live`` server runs with the default settings."""
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://[::1]/x"):
        with pytest.raises(UnprocessableEntityError) as caught:
            sdk.webhooks.create_webhook_endpoint(endpoint_url=url, events=["role.created"])
        assert caught.value.status_code == 422


def test_duplicate_url_is_a_conflict(hooks_sdk, make_endpoint) -> None:
    created = make_endpoint(["role.created"])
    with pytest.raises(ConflictError):
        hooks_sdk.webhooks.create_webhook_endpoint(
            endpoint_url=created.endpoint_url, events=["role.created"]
        )


def test_delete_then_not_found(hooks_live, hooks_sdk, make_endpoint) -> None:
    created = make_endpoint(["role.created"])
    hooks_sdk.webhooks.delete_webhook_endpoint(created.id)
    with pytest.raises(NotFoundError):
        hooks_sdk.webhooks.delete_webhook_endpoint(created.id)
    with pytest.raises(NotFoundError):
        hooks_sdk.webhooks.update_webhook_endpoint(created.id, status="enabled")
    for path in (f"/webhook_endpoints/{created.id}", f"/webhook_endpoints/{created.id}/deliveries"):
        answer = httpx.get(f"{hooks_live.url}{path}", headers=HEADERS)
        assert answer.status_code == 404
        assert answer.json()["code"] == "entity_not_found"
    assert all(e.id != created.id for e in hooks_sdk.webhooks.list_webhook_endpoints(limit=100))
