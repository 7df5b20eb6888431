"""Webhook fixtures, imported by the test modules here (a second ``conftest.py`` would take
the top one's module name): an API whose settings allow 127.0.0.1 receivers and retry fast,
its own worker, and a real HTTP receiver (``http.server`` in a thread) that records requests.

Endpoints made here are deleted after each test: the fan-out sends every sequenced event
to every enabled endpoint in the (shared) database, whoever created the event.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from workos._errors import NotFoundError

from conftest import API_KEY, LiveServer, free_port, make_settings, serve, unique
from idp_sync.runtime import Runtime

FAST = {
    "IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": True,
    "IDP_SYNC_WEBHOOK_BACKOFF_BASE_SECONDS": 0.2,
    "IDP_SYNC_WEBHOOK_BACKOFF_MAX_SECONDS": 0.4,
    "IDP_SYNC_WEBHOOK_TIMEOUT_SECONDS": 2.0,
}


@pytest.fixture(scope="session")
def hooks_live(
    pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The API with webhook settings for tests (private destinations allowed, fast backoff)."""
    settings = make_settings(pg_url, redis_url, str(tmp_path_factory.mktemp("hooks")), **FAST)
    runtime = Runtime(settings)
    server = serve(runtime)
    yield server
    server.stop()
    runtime.dispose()


@pytest.fixture
def hooks_worker(hooks_live: LiveServer) -> Iterator[object]:
    from idp_sync.embedded import worker_and_beat

    assert hooks_live.runtime.celery is not None
    with worker_and_beat(hooks_live.runtime.celery, beat=False, concurrency=4) as running:
        yield running


@pytest.fixture
def hooks_sdk(hooks_live: LiveServer):  # type: ignore[no-untyped-def]
    from workos import WorkOSClient

    return WorkOSClient(
        api_key=API_KEY, client_id="client_test", base_url=hooks_live.url, max_retries=0
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers POSTs with ``respond(path, body)`` (default 200) and records every request."""

    port: int
    received: list[Received] = field(default_factory=list)
    respond: Callable[[str, bytes], int] = lambda path, body: 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def at(self, name: str, status: int | None = None) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.received
                if r.path == f"/{name}" and (status is None or r.status == status)
            ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.respond(self.path, body)
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_endpoint(hooks_sdk, receiver):  # type: ignore[no-untyped-def]
    """Create endpoints on the receiver through the SDK; deleted after the test."""
    made = []

    def make(events: list[str], name: str | None = None):  # type: ignore[no-untyped-def]
        endpoint = hooks_sdk.webhooks.create_webhook_endpoint(
            endpoint_url=receiver.url(name or unique("hook")), events=events
        )
        made.append(endpoint.id)
        return endpoint

    yield make
    for endpoint_id in made:
        with contextlib.suppress(NotFoundError):  # the test deleted it itself
            hooks_sdk.webhooks.delete_webhook_endpoint(endpoint_id)
