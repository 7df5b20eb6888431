"""Issue 6 point 5: two jobs touching the same memberships, run by concurrent workers on
PostgreSQL, end in the state the resolver gives for the final configuration."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import httpx
from job_workers import seed_default_members, start_worker, worker_env
from sqlalchemy import select
from sqlalchemy.orm import Session

from conftest import API_KEY, make_settings, serve, unique, wait_for
from idp_sync.ids import new_id
from idp_sync.jobs.models import Job
from idp_sync.memberships.models import MembershipRole, OrganizationMembership
from idp_sync.runtime import Runtime

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def test_two_default_changes_racing_end_on_the_final_default(live, worker, sdk, engine) -> None:
    org = sdk.organizations.create_organization(name=unique("Race"))
    users = [
        sdk.user_management.create_user(email=f"{unique('race')}@example.com") for _ in range(120)
    ]
    for user in users:
        sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=org.id
        )
    first = sdk.authorization.create_organization_role(org.id, name="First")
    final = sdk.authorization.create_organization_role(org.id, name="Final")

    jobs: list[str] = []
    lock = threading.Lock()

    def change(slug: str) -> None:
        answer = httpx.put(
            f"{live.url}/organizations/{org.id}/authorization_settings",
            json={"default_role_slug": slug},
            headers=HEADERS,
        )
        assert answer.status_code == 202, answer.text
        with lock:
            jobs.append(answer.json()["job"]["id"])

    change(first.slug)
    change(final.slug)  # both jobs are queued before either finishes; the worker runs 2 at once
    assert len(jobs) == 2

    def all_done() -> bool:
        states = [
            httpx.get(f"{live.url}/jobs/{job_id}", headers=HEADERS).json()["state"]
            for job_id in jobs
        ]
        assert "failed" not in states
        return states == ["succeeded", "succeeded"]

    wait_for(all_done, timeout=90, interval=0.2)
    with Session(engine) as db:
        slugs = db.scalars(
            select(MembershipRole.role_slug)
            .join(OrganizationMembership, OrganizationMembership.id == MembershipRole.membership_id)
            .where(OrganizationMembership.organization_id == org.id)
        ).all()
    assert len(slugs) == 120
    assert set(slugs) == {final.slug}


def test_two_worker_processes_racing_end_on_the_final_default(
    pg_url, redis_url, engine, tmp_path: Path
) -> None:
    """The same race with two real worker processes (one job each, solo pool): the jobs
    run at once on the same memberships and they end on the last default set."""
    settings = make_settings(pg_url, redis_url, str(tmp_path), IDP_SYNC_JOB_BATCH_SIZE=20)
    env = worker_env(settings, "INFO", IDP_SYNC_JOB_BATCH_SIZE="20")
    runtime = Runtime(settings)
    server = serve(runtime)
    org_id = new_id("organization")
    ids = seed_default_members(engine, org_id, 600)
    workers = []
    try:
        slugs = []
        for name in ("First", "Final"):
            answer = httpx.post(
                f"{server.url}/authorization/organizations/{org_id}/roles",
                json={"name": name},
                headers=HEADERS,
            )
            assert answer.status_code == 201, answer.text
            slugs.append(answer.json()["slug"])
        jobs = []
        for slug in slugs:  # both queued before any worker runs: one for each
            answer = httpx.put(
                f"{server.url}/organizations/{org_id}/authorization_settings",
                json={"default_role_slug": slug},
                headers=HEADERS,
            )
            assert answer.status_code == 202, answer.text
            jobs.append(answer.json()["job"]["id"])
        workers = [start_worker(env, tmp_path, f"worker-{n}.log") for n in (1, 2)]

        def states() -> list[str]:
            with Session(engine) as db:
                found = [db.get(Job, job_id) for job_id in jobs]
                assert all(j is not None and j.state != "failed" for j in found)
                return [j.state for j in found if j is not None]

        wait_for(lambda: states() == ["succeeded", "succeeded"], timeout=90, interval=0.2)
        # The JSON logs at IDP_SYNC_LOG_LEVEL=INFO (not Celery's default WARNING) say which
        # process ran which job.
        started = [_jobs_started(tmp_path / f"worker-{n}.log") for n in (1, 2)]
        assert sorted(j for run in started for j in run) == sorted(jobs)
        assert [len(run) for run in started] == [1, 1]  # each process ran one of them
        with Session(engine) as db:
            roles = dict(
                db.execute(
                    select(MembershipRole.membership_id, MembershipRole.role_slug).where(
                        MembershipRole.membership_id.in_(ids)
                    )
                ).all()
            )
        assert len(roles) == len(ids) and set(roles.values()) == {slugs[1]}
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(20)
        server.stop()
        runtime.dispose()


def _jobs_started(log: Path) -> list[str]:
    found = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("message") == "job started":
                found.append(record["job_id"])
    return found
