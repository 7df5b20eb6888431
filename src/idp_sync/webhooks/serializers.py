"""Webhook objects on the wire: the SDK's ``WebhookEndpoint`` shape, and our deliveries."""

from __future__ import annotations

from typing import Any

from idp_sync.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from idp_sync.wire import iso


def masked(secret: str) -> str:
    """What reads show instead of the secret (the SDK's model requires the field)."""
    return "********" + secret[-4:]


def endpoint(e: WebhookEndpoint, *, reveal_secret: bool = False) -> dict[str, Any]:
    """``reveal_secret`` only in the answer to the creation: the secret is shown once."""
    return {
        "object": "webhook_endpoint",
        "id": e.id,
        "endpoint_url": e.endpoint_url,
        "secret": e.secret if reveal_secret else masked(e.secret),
        "status": e.status,
        "events": list(e.events),
        "disabled_reason": e.disabled_reason,
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
    }


def attempt(a: WebhookDeliveryAttempt) -> dict[str, Any]:
    return {
        "number": a.number,
        "attempted_at": iso(a.attempted_at),
        "duration_ms": a.duration_ms,
        "outcome": a.outcome,
        "status_code": a.status_code,
        "error": a.error,
    }


def delivery(d: WebhookDelivery, attempts: list[WebhookDeliveryAttempt]) -> dict[str, Any]:
    return {
        "object": "webhook_delivery",
        "id": d.id,
        "webhook_endpoint_id": d.endpoint_id,
        "event_id": d.event_id,
        "event": d.event_name,
        "state": d.state,
        "attempt_count": d.attempt_count,
        "attempts": [attempt(a) for a in attempts],
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_attempt_at": iso(d.next_attempt_at) if d.state == "pending" else None,
        "expires_at": iso(d.expires_at),
        "delivered_at": iso(d.delivered_at),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }
