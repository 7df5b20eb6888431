"""Webhook payloads and signatures, as WorkOS makes them (pure: no I/O, no clock of its own).

``WorkOS-Signature: t=<ms>, v1=<hex HMAC-SHA256 of "<ms>.<body>">``: the receiver hashes the
raw request body, so the bytes signed here must be the bytes sent, never re-serialised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
from typing import Any

SIGNATURE_HEADER = "WorkOS-Signature"


def new_secret() -> str:
    """A signing secret (256 random bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def payload(event: dict[str, Any]) -> bytes:
    """The event's JSON as the body of a delivery: compact UTF-8, the same on every attempt."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, body: bytes, timestamp_ms: int) -> str:
    """The ``WorkOS-Signature`` header value for ``body`` sent at ``timestamp_ms``."""
    message = str(timestamp_ms).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"t={timestamp_ms}, v1={digest}"


def backoff_seconds(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before retry ``attempt`` (1 = the first retry): exponential, capped, with
    "equal jitter" (half fixed, half random) so that failing receivers are not hit in step."""
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    draw: float = (rng or random).random()  # jitter, not a secret
    return ceiling / 2 + draw * ceiling / 2


def ordering_key(name: str, data: dict[str, Any]) -> str | None:
    """The object an event is about, whose deliveries must keep their order.

    Most events carry the object as ``data`` (its ``id``). Group membership events carry a
    ``user`` and a ``group``: they are keyed by the group, so that a user removed from a
    group is never delivered after the group's deletion.
    """
    if name.startswith("dsync.group.user_"):
        group = data.get("group")
        if isinstance(group, dict) and isinstance(group.get("id"), str):
            return str(group["id"])[:200]
    value = data.get("id")
    return value[:200] if isinstance(value, str) and value else None
