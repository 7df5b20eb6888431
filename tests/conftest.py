"""Shared fixtures: real PostgreSQL and Redis, migrated once per run.

* ``pg_url``: a fresh database per test run on the local PostgreSQL, created by Alembic
  migrations (never ``create_all``), dropped at the end.
* ``session``: a session inside a transaction that is rolled back after the test
  (services commit savepoints, never the outer transaction).
* ``live``: the API served by uvicorn in a thread, for tests through the ``workos`` SDK.
* ``worker``: a real Celery worker (thread pool) on Redis, consuming what ``live`` enqueues.

Under ``CI=true`` a missing PostgreSQL or Redis fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from idp_sync.config import Settings
from idp_sync.db import make_engine, upgrade
from idp_sync.runtime import Runtime

PG_ADMIN_URL = os.environ.get(
    "IDP_SYNC_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("IDP_SYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
API_KEY = "sk_test_bootstrap_key"
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database, dropped afterwards."""
    name = f"idp_sync_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        unavailable("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def engine(pg_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: sa.Engine) -> Iterator[Session]:
    """A session whose work is rolled back at the end of the test (STYLE "Tests")."""
    with engine.connect() as conn:
        outer = conn.begin()
        db = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield db
        finally:
            db.close()
            outer.rollback()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(database_url: str, broker_url: str, tmp: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "IDP_SYNC_API_KEY": API_KEY,
        "IDP_SYNC_DATA_DIR": tmp,
        "IDP_SYNC_BROKER_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}:",
        "IDP_SYNC_SWEEPER_THRESHOLD": 2.0,
        "IDP_SYNC_JOB_BATCH_SIZE": 50,
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class LiveServer:
    url: str
    runtime: Runtime
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(10)


def serve(runtime: Runtime, port: int | None = None, wrap: Any = None) -> LiveServer:
    """The API for ``runtime`` served by uvicorn in a thread (on ``port`` if given;
    ``wrap``, an ASGI middleware factory, around the app if given)."""
    import uvicorn

    from idp_sync.api.app import create_app

    port = port or free_port()
    app = create_app(runtime=runtime)
    config = uvicorn.Config(
        wrap(app) if wrap is not None else app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", runtime, server, thread)


@pytest.fixture(scope="session")
def live(
    pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The API on a real port, backed by PostgreSQL, publishing to Redis."""
    settings = make_settings(pg_url, redis_url, str(tmp_path_factory.mktemp("live")))
    runtime = Runtime(settings)
    server = serve(runtime)
    yield server
    server.stop()
    runtime.dispose()


@pytest.fixture
def worker(live: LiveServer) -> Iterator[object]:
    """A real Celery worker on Redis for the live server's app, on every queue.

    Per test: Celery's worker shutdown flag is process-wide, so stopping any embedded
    worker (other tests start their own) stops every worker thread in the process.
    """
    from idp_sync.embedded import worker_and_beat

    assert live.runtime.celery is not None
    with worker_and_beat(live.runtime.celery, beat=False) as running:
        yield running


@pytest.fixture
def sdk(live: LiveServer):  # type: ignore[no-untyped-def]
    from workos import WorkOSClient

    return WorkOSClient(api_key=API_KEY, client_id="client_test", base_url=live.url, max_retries=0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_org(session: Session) -> Any:
    """Service level, in ``session``: a new organization with a unique name."""
    from idp_sync.organizations.services import create_organization

    return create_organization(
        session,
        name=unique("Acme"),
        domains=[],
        external_id=None,
        metadata=None,
        allow_profiles_outside_organization=None,
    )


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
