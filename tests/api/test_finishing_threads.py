"""Commits never wait behind endpoints for a thread.

With the endpoints' threadpool cut to two threads: one request locks the environment
settings row and returns; two more take both threads and wait for that lock. If the
first one's commit needed a thread of the same pool, the three would wait on each other
until a timeout; commits run on threads of their own, so every request completes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import httpx

from conftest import API_KEY, fresh_database, make_settings, serve
from idp_sync.runtime import Runtime

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


class TwoEndpointThreads:
    """ASGI wrapper: the server loop's default threadpool cut to two threads."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        await self.app(scope, receive, send)


def test_lock_waiters_holding_every_endpoint_thread_do_not_block_commits(
    redis_url: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with fresh_database() as database:  # its own: the environment settings are changed
        runtime = Runtime(make_settings(database, redis_url, str(tmp_path)))
        server = serve(runtime, wrap=TwoEndpointThreads)
        try:
            statuses = _toggle_concurrently(server.url, requests=6)
        finally:
            server.stop()
            runtime.dispose()
    assert all(status in (200, 202) for status in statuses), statuses


def _toggle_concurrently(base_url: str, requests: int) -> list[int]:
    """PUT /authorization/settings from ``requests`` clients at once: each locks the
    settings row (FOR UPDATE) and starts a job."""
    with httpx.Client(base_url=base_url, headers=HEADERS, timeout=20) as client:
        assert client.get("/authorization/settings").status_code == 200  # the key is cached

    def toggle(n: int) -> int:
        with httpx.Client(base_url=base_url, headers=HEADERS, timeout=20) as client:
            body = {"multiple_roles_enabled": n % 2 == 0}
            try:
                return client.put("/authorization/settings", json=body).status_code
            except httpx.TimeoutException:
                return 0  # stuck: the commits waited for the endpoints' threads

    with ThreadPoolExecutor(requests) as pool:
        return list(pool.map(toggle, range(requests)))
