"""The receiver of bench/webhooks.py: a bare ASGI app that records every POST it is sent.

Served by uvicorn in its own process (``uvicorn --app-dir bench --lifespan off
_webhook_receiver:app``), so that recording arrivals competes with neither the worker nor
the load generator for a GIL. A POST to any path answers 200 with an empty body and records
the arrival time (``time.time()``, taken before the body is read, so the same clock as the
events' ``created_at`` on this machine), the path, the event id of the JSON body and the
``WorkOS-Signature`` header; the raw body is kept for one request in ``SAMPLE_EVERY``, so
that the bench can check signatures with the SDK without holding every body.

``GET /count`` answers how many POSTs were recorded; ``GET /dump?since=K`` the records
from index K on, as JSON lists ``[arrival, path, event_id, signature, body or null]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

SAMPLE_EVERY = 10

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

records: list[list[Any]] = []


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes = b"") -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _event_id(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # served with ``--lifespan off``: nothing else comes
        return
    arrival = time.time()
    if scope["method"] == "POST":
        body = await _body(receive)
        headers = dict(scope["headers"])
        signature = headers.get(b"workos-signature", b"").decode()
        keep = body.decode() if len(records) % SAMPLE_EVERY == 0 else None
        records.append([arrival, scope["path"], _event_id(body), signature, keep])
        await _answer(send, 200)
    elif scope["path"] == "/count":
        await _answer(send, 200, json.dumps({"count": len(records)}).encode())
    elif scope["path"] == "/dump":
        query = scope.get("query_string", b"").decode()
        since = int(query.partition("since=")[2] or 0) if "since=" in query else 0
        await _answer(send, 200, json.dumps(records[since:]).encode())
    else:
        await _answer(send, 404)
