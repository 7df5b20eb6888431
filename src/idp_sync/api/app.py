"""The FastAPI application factory: management API, events, jobs and operations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp_sync.api import errors, ops
from idp_sync.auth.services import ApiKeyVerifier
from idp_sync.config import Settings
from idp_sync.context import correlation_id, new_correlation_id
from idp_sync.metrics import HTTP_REQUESTS, DatabaseCollector
from idp_sync.runtime import Runtime
from idp_sync.tasks import create_celery_app


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the API for ``runtime`` (or a new one for ``settings``); connects nothing yet."""
    from idp_sync.directory.api import router as directory_router
    from idp_sync.directory.scim.api import router as scim_router
    from idp_sync.events.api import router as events_router
    from idp_sync.jobs.api import router as jobs_router
    from idp_sync.memberships.api import router as memberships_router
    from idp_sync.organizations.api import router as organizations_router
    from idp_sync.rbac.api import router as rbac_router
    from idp_sync.sso.api import router as sso_router
    from idp_sync.sso.routes import router as sso_flow_router
    from idp_sync.users.api import router as users_router
    from idp_sync.webhooks.api import router as webhooks_router

    runtime = runtime or Runtime(settings)
    if runtime.celery is None:
        create_celery_app(runtime=runtime)
    app = FastAPI(
        title="idp-sync", version="0.1.0", docs_url="/docs", redoc_url=None, lifespan=_lifespan
    )
    app.state.runtime = runtime
    app.state.api_keys = ApiKeyVerifier(
        runtime.settings.api_key, runtime.settings.api_key_cache_seconds
    )
    app.state.metrics_registry = _metrics_registry(runtime)
    errors.install(app)
    # Routers are matched in this order, router by router: the hottest paths (membership
    # reads, the ACS, what IdPs push over SCIM: docs/benchmarks.md) first. No two routers
    # share a path prefix.
    for router in (
        memberships_router,
        sso_flow_router,
        scim_router,
        ops.router,
        rbac_router,
        organizations_router,
        users_router,
        events_router,
        jobs_router,
        directory_router,
        webhooks_router,
        sso_router,
    ):
        app.include_router(router)
    app.add_middleware(CorrelationMiddleware)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Nothing to open (engines and pools are built on first use); close the read pool
    on its own loop at shutdown."""
    yield
    await app.state.runtime.close_reader()


def _metrics_registry(runtime: Runtime) -> CollectorRegistry:
    """The process's default metrics plus the database-backed pipeline gauges."""
    registry = CollectorRegistry()
    registry.register(_Forward(REGISTRY))
    registry.register(DatabaseCollector(runtime))
    return registry


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


class CorrelationMiddleware:
    """Every request gets a correlation id (``X-Request-Id``), carried into the tasks it
    enqueues and their log lines. Pure ASGI: no per-request task like BaseHTTPMiddleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id")
        value = given.decode("latin-1")[:64] if given else new_correlation_id()
        token = correlation_id.set(value)

        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", value.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(scope.get("method", ""), template, str(status)).inc()
