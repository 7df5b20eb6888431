"""Nothing is lost when the broker is down at commit time (DESIGN §4 "Nothing is lost").

These tests run their OWN redis-server on a free port, so that it can be stopped and
started again without touching the Redis that other tests (and other people) share.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import API_KEY, free_port, make_settings, serve, unique, wait_for
from idp_sync.db import utcnow
from idp_sync.embedded import worker_and_beat
from idp_sync.events.models import OutboxMessage
from idp_sync.runtime import Runtime
from idp_sync.tasks import create_celery_app, enqueue

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
SWEEP_TASK = "idp_sync.outbox.sweep"


class RedisServer:
    """A private redis-server subprocess that can be stopped and restarted on its port."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, interval=0.05)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def outbox_row(engine: sa.Engine, job_id: str) -> OutboxMessage:
    with Session(engine) as session:
        rows = session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.task_name == "idp_sync.jobs.run")
        ).all()
        mine = [row for row in rows if row.kwargs.get("job_id") == job_id]
        assert len(mine) == 1, mine
        return mine[0]


def job_state(url: str, job_id: str) -> dict:
    answer = httpx.get(f"{url}/jobs/{job_id}", headers=HEADERS)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_work_committed_while_the_broker_is_down_runs_when_it_returns(
    pg_url: str, db: sa.Engine, private_redis: RedisServer, tmp_path: Path
) -> None:
    runtime = Runtime(make_settings(pg_url, private_redis.url, str(tmp_path)))
    app = create_celery_app(runtime=runtime)
    live = serve(runtime)
    api = httpx.Client(base_url=live.url, headers=HEADERS, timeout=60)
    old_default = api.get("/authorization/settings").json()["default_role_slug"]
    restored = False
    try:
        new_default = unique("fallback")
        role = api.post("/authorization/roles", json={"slug": new_default, "name": "Fallback"})
        assert role.status_code == 201, role.text
        org = api.post("/organizations", json={"name": unique("Acme")}).json()
        email = f"{unique('u')}@example.com"
        user = api.post("/user_management/users", json={"email": email}).json()
        member = api.post(
            "/user_management/organization_memberships",
            json={"user_id": user["id"], "organization_id": org["id"]},
        ).json()
        assert member["role"] == {"slug": old_default}

        private_redis.stop()
        answer = api.put("/authorization/settings", json={"default_role_slug": new_default})
        assert answer.status_code == 202, answer.text
        assert answer.json()["default_role_slug"] == new_default
        job_id = answer.json()["job"]["id"]
        message = outbox_row(db, job_id)
        assert message.completed_at is None  # committed with the change, waiting for a publish
        assert job_state(live.url, job_id)["state"] == "pending"

        private_redis.start()
        with worker_and_beat(app, beat=False):
            # Still nothing: the publish at commit failed, nobody has republished it yet.
            time.sleep(0.5)
            assert job_state(live.url, job_id)["state"] == "pending"
            # The sweeper only takes messages whose threshold (2 s in tests) has passed.
            time.sleep(max(0.0, (message.available_at - utcnow()).total_seconds()) + 0.2)
            app.send_task(SWEEP_TASK, queue="maintenance")  # as beat sends it

            def finished() -> dict | None:
                job = job_state(live.url, job_id)
                return job if job["state"] in ("succeeded", "failed") else None

            job = wait_for(finished, timeout=30)
            assert job["state"] == "succeeded", job
            assert job["progress"]["changed"] >= 1
            completed = wait_for(lambda: outbox_row(db, job_id).completed_at, timeout=10)
            assert completed is not None
            assert outbox_row(db, job_id).published_count >= 2  # at commit, then by the sweeper
            got = api.get(f"/user_management/organization_memberships/{member['id']}").json()
            assert got["role"] == {"slug": new_default}

            # Restore the environment default, with the broker up: published at commit.
            back = api.put("/authorization/settings", json={"default_role_slug": old_default})
            assert back.status_code == 202, back.text
            back_id = back.json()["job"]["id"]
            wait_for(lambda: job_state(live.url, back_id)["state"] == "succeeded", timeout=30)
            restored = True
            got = api.get(f"/user_management/organization_memberships/{member['id']}").json()
            assert got["role"] == {"slug": old_default}
    finally:
        if not restored:
            api.put("/authorization/settings", json={"default_role_slug": old_default})
        api.close()
        live.stop()
        runtime.dispose()


def test_a_rolled_back_transaction_publishes_nothing(
    pg_url: str, db: sa.Engine, private_redis: RedisServer, tmp_path: Path
) -> None:
    settings = make_settings(pg_url, private_redis.url, str(tmp_path))
    runtime = Runtime(settings)
    create_celery_app(runtime=runtime)
    queue_key = f"{settings.broker_key_prefix}maintenance"
    broker = private_redis.client()
    try:
        # Control: a committed enqueue reaches the broker at once.
        with runtime.transaction() as session:
            committed = enqueue(session, SWEEP_TASK, queue="maintenance")
        assert broker.llen(queue_key) == 1

        # Rolled back: no message, no row, and nothing left over for the session's next
        # commit to publish (a session may serve several transactions).
        session = runtime.session()
        with pytest.raises(RuntimeError), session.begin():
            dropped = enqueue(session, SWEEP_TASK, queue="maintenance")
            raise RuntimeError("the change fails after the enqueue")
        assert broker.llen(queue_key) == 1
        with session.begin():
            session.execute(sa.select(1))
        session.close()
        assert broker.llen(queue_key) == 1, "the rolled-back enqueue was published later"
        with Session(db) as check:
            assert check.get(OutboxMessage, dropped.id) is None
            # The control row is done with; keep it from being swept by later tests.
            check.execute(
                sa.update(OutboxMessage)
                .where(OutboxMessage.id == committed.id)
                .values(completed_at=utcnow())
            )
            check.commit()
    finally:
        runtime.dispose()


def test_work_enqueued_in_a_rolled_back_savepoint_is_not_published(
    pg_url: str, db: sa.Engine, private_redis: RedisServer, tmp_path: Path
) -> None:
    """A savepoint rolled back inside a committed transaction takes its enqueue with it."""
    settings = make_settings(pg_url, private_redis.url, str(tmp_path))
    runtime = Runtime(settings)
    create_celery_app(runtime=runtime)
    queue_key = f"{settings.broker_key_prefix}maintenance"
    broker = private_redis.client()
    try:
        with runtime.transaction() as session:
            savepoint = session.begin_nested()
            dropped = enqueue(session, SWEEP_TASK, queue="maintenance")
            session.flush()
            savepoint.rollback()
        with Session(db) as check:
            assert check.get(OutboxMessage, dropped.id) is None
        assert broker.llen(queue_key) == 0, "a message was published for a rolled-back row"
    finally:
        runtime.dispose()


def test_the_sweep_task_can_be_applied_from_code(
    pg_url: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    """An operator (or a test) runs the sweeper with ``apply_async``, as Celery documents."""
    settings = make_settings(pg_url, private_redis.url, str(tmp_path))
    runtime = Runtime(settings)
    app = create_celery_app(runtime=runtime)
    try:
        app.tasks[SWEEP_TASK].apply_async(queue="maintenance")
        assert private_redis.client().llen(f"{settings.broker_key_prefix}maintenance") == 1
    finally:
        runtime.dispose()
