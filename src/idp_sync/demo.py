"""``idp-sync demo``: the whole flow on the embedded default, through real HTTP and a real
Celery worker (SQLite data, SQLite broker), in a few seconds.

It creates a permission, roles, an organization, a user and a membership; changes the
default role; shows the worker's job recompute the membership; lists the events.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import click
import httpx

from idp_sync.auth.services import create_api_key
from idp_sync.db import upgrade
from idp_sync.runtime import Runtime


def run_demo() -> int:
    runtime = Runtime()
    settings = runtime.settings
    settings.ensure_data_dir()
    _step(f"database: {settings.effective_database_url}")
    _step(f"broker:   {settings.effective_broker_url}")
    upgrade(settings.effective_database_url)
    with runtime.transaction() as session:
        _, key = create_api_key(session, "demo")
    from idp_sync.api.app import create_app
    from idp_sync.embedded import worker_and_beat

    app = create_app(runtime=runtime)
    assert runtime.celery is not None
    server, url = _serve(app)
    try:
        with (
            worker_and_beat(runtime.celery),
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as client,
        ):
            _flow(client)
    finally:
        server.should_exit = True
        runtime.dispose()
    click.secho("\ndemo finished: the worker changed the membership's role", fg="green")
    return 0


def _flow(client: httpx.Client) -> None:
    tag = secrets.token_hex(3)
    _call(
        client,
        "POST",
        "/authorization/permissions",
        {"slug": f"videos:view-{tag}", "name": "View videos"},
    )
    viewer = _call(
        client, "POST", "/authorization/roles", {"slug": f"viewer-{tag}", "name": "Viewer"}
    )
    _call(
        client,
        "POST",
        f"/authorization/roles/{viewer['slug']}/permissions",
        {"slug": f"videos:view-{tag}"},
    )
    org = _call(
        client, "POST", "/organizations", {"name": f"Acme {tag}", "domains": [f"acme-{tag}.com"]}
    )
    user = _call(
        client,
        "POST",
        "/user_management/users",
        {"email": f"ada-{tag}@acme-{tag}.com", "first_name": "Ada"},
    )
    membership = _call(
        client,
        "POST",
        "/user_management/organization_memberships",
        {"user_id": user["id"], "organization_id": org["id"]},
    )
    _step(
        f"membership {membership['id']} starts with role "
        f"'{membership['role']['slug']}' (the default)"
    )
    previous = client.get("/authorization/settings").json()["default_role_slug"]
    try:
        _change_default(client, viewer["slug"])
        now = client.get(f"/user_management/organization_memberships/{membership['id']}").json()
        _step(f"membership {membership['id']} now has role '{now['role']['slug']}'")
        why = client.get(
            f"/user_management/organization_memberships/{membership['id']}/role_explanation"
        )
        _step(f"role explanation: {why.json()}")
        events = client.get("/events", params={"organization_id": org["id"], "limit": 20}).json()
        _step("events of the organization:")
        for event in events["data"]:
            click.echo(
                f"    {event['created_at']}  {event['event']:<34} {event['data'].get('id', '')}"
            )
    finally:
        _change_default(client, previous)


def _change_default(client: httpx.Client, slug: str) -> None:
    answer = _call(client, "PUT", "/authorization/settings", {"default_role_slug": slug})
    job = answer.get("job")
    if job is None:
        return
    _step(f"default role -> '{slug}': job {job['id']} queued on the bulk queue")
    deadline = time.monotonic() + 45
    while job["state"] not in ("succeeded", "failed"):
        if time.monotonic() > deadline:
            raise click.ClickException(f"job {job['id']} did not finish: {job}")
        time.sleep(0.2)
        job = client.get(f"/jobs/{job['id']}").json()
    _step(f"job {job['id']} {job['state']}: progress {job['progress']}")


def _call(client: httpx.Client, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.request(method, path, json=body)
    if answer.status_code >= 400:
        raise click.ClickException(f"{method} {path} -> {answer.status_code} {answer.text}")
    data: dict[str, Any] = answer.json()
    _step(f"{method} {path} -> {answer.status_code} {data.get('id') or data.get('slug') or ''}")
    return data


def _serve(app: Any) -> tuple[Any, str]:
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


def _step(message: str) -> None:
    click.echo(f"==> {message}")
