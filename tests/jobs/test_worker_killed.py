"""Issue 6 point 5: a job whose worker is killed with SIGKILL mid-way resumes from its last
committed batch once redelivered, and ends with every membership right, none changed twice
and no event duplicated."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa
from job_workers import seed_default_members, start_worker, worker_env
from sqlalchemy.orm import Session

from conftest import API_KEY, make_settings, serve, unique, wait_for
from idp_sync.events.models import Event
from idp_sync.events.outbox import claim_due_messages
from idp_sync.ids import new_id
from idp_sync.jobs.models import Job
from idp_sync.memberships.models import MembershipAudit, MembershipRole
from idp_sync.runtime import Runtime
from idp_sync.tasks import create_celery_app, publish_pending

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
MEMBERS = 1500


def test_a_job_killed_mid_way_resumes_and_changes_each_membership_once(
    pg_url, redis_url, engine, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url,
        redis_url,
        str(tmp_path),
        IDP_SYNC_JOB_BATCH_SIZE=20,
        IDP_SYNC_JOB_LEASE_SECONDS=2.0,
    )
    env = worker_env(
        settings, "WARNING", IDP_SYNC_JOB_BATCH_SIZE="20", IDP_SYNC_JOB_LEASE_SECONDS="2"
    )
    runtime = Runtime(settings)
    app = create_celery_app(runtime=runtime)
    server = serve(runtime)
    org_id = new_id("organization")
    ids = seed_default_members(engine, org_id, MEMBERS)
    role = unique("after-kill")
    first = None
    try:
        httpx.post(
            f"{server.url}/authorization/roles", json={"slug": role, "name": "K"}, headers=HEADERS
        )
        answer = httpx.put(
            f"{server.url}/organizations/{org_id}/authorization_settings",
            json={"default_role_slug": role},
            headers=HEADERS,
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job"]["id"]

        def progress() -> Job:
            with Session(engine) as db:
                job = db.get(Job, job_id)
                assert job is not None
                return job

        first = start_worker(env, tmp_path)
        wait_for(lambda: progress().done >= MEMBERS // 4, timeout=60, interval=0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = progress()
        assert killed_at.state == "running" and 0 < killed_at.done < MEMBERS

        # Redelivery: the sweeper republishes the job's outbox message once it is due.
        second = start_worker(env, tmp_path)
        try:

            def swept_and_done() -> bool:
                with runtime.transaction() as db:
                    due = claim_due_messages(db, threshold_seconds=2.0)
                if due:
                    publish_pending(app, due)
                return progress().state == "succeeded"

            wait_for(swept_and_done, timeout=90, interval=0.5)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)

        job = progress()
        assert job.done == MEMBERS and job.changed == MEMBERS
        with Session(engine) as db:
            roles = dict(
                db.execute(
                    sa.select(MembershipRole.membership_id, MembershipRole.role_slug).where(
                        MembershipRole.membership_id.in_(ids)
                    )
                ).all()
            )
            assert set(roles.values()) == {role} and len(roles) == MEMBERS
            audits = db.execute(
                sa.select(MembershipAudit.membership_id, sa.func.count())
                .where(MembershipAudit.organization_id == org_id)
                .group_by(MembershipAudit.membership_id)
            ).all()
            assert len(audits) == MEMBERS and {n for _, n in audits} == {1}
            datas = db.scalars(
                sa.select(Event.data).where(
                    Event.organization_id == org_id,
                    Event.event == "organization_membership.updated",
                )
            ).all()
            events = Counter(d["id"] for d in datas).most_common()
            assert len(events) == MEMBERS and {n for _, n in events} == {1}
    finally:
        if first is not None and first.poll() is None:
            first.kill()
        server.stop()
        runtime.dispose()
