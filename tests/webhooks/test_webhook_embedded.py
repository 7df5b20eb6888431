"""Webhooks on the embedded default (DESIGN §4): SQLite, Celery's SQLAlchemy transport and a
real worker in the process deliver, retry and record exactly as on PostgreSQL and Redis."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hookfixtures import *  # noqa: F403
from workos.webhooks._verification import verify_event

from conftest import API_KEY, serve, unique, wait_for
from idp_sync.config import Settings
from idp_sync.db import upgrade
from idp_sync.embedded import worker_and_beat
from idp_sync.runtime import Runtime
from idp_sync.tasks import create_celery_app

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def test_embedded_default_delivers_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver
) -> None:
    for name in ("DATABASE_URL", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(  # type: ignore[call-arg]
        IDP_SYNC_DATA_DIR=str(tmp_path / "data"),
        IDP_SYNC_API_KEY=API_KEY,
        IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=True,
        IDP_SYNC_WEBHOOK_BACKOFF_BASE_SECONDS=0.1,
        IDP_SYNC_WEBHOOK_BACKOFF_MAX_SECONDS=0.2,
    )
    upgrade(settings.effective_database_url)
    runtime = Runtime(settings)
    app = create_celery_app(runtime=runtime)
    live = serve(runtime)
    api = httpx.Client(base_url=live.url, headers=HEADERS, timeout=30)
    calls: list[int] = []
    receiver.respond = lambda path, body: calls.append(1) or (500 if len(calls) == 1 else 200)
    try:
        with worker_and_beat(app, beat=False):
            made = api.post(
                "/webhook_endpoints",
                json={"endpoint_url": receiver.url("lite"), "events": ["role.created"]},
            )
            assert made.status_code == 201, made.text
            endpoint = made.json()
            slug = unique("lite")
            assert api.post("/authorization/roles", json={"slug": slug, "name": "L"}).is_success

            wait_for(lambda: [r for r in receiver.at("lite") if r.status == 200], timeout=15)
            first, second = receiver.at("lite")
            assert (first.status, second.status, first.body) == (500, 200, second.body)
            event = verify_event(
                event_body=second.body,
                event_signature=second.headers["WorkOS-Signature"],
                secret=endpoint["secret"],
            )
            assert (event.event, event.data.slug) == ("role.created", slug)
            listed = api.get(f"/webhook_endpoints/{endpoint['id']}/deliveries").json()["data"]
            assert [(d["state"], d["attempt_count"]) for d in listed] == [("delivered", 2)]
    finally:
        api.close()
        live.stop()
        runtime.dispose()
