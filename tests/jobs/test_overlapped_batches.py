"""Overlapped batches on PostgreSQL (jobs.tasks._run_overlapped): several batches of one job
are written at once on their own connections, and still commit in order, so the cursor
only ever stands at the end of a committed prefix of the job.

A real worker on Redis runs the jobs; ``services.write_batch`` is wrapped to hold some
batches back (a slow write), which makes a later batch finish writing before an earlier
one: the order of commits must not depend on which writer gets to the job row first.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from conftest import API_KEY, unique, wait_for
from idp_sync.events.models import Event
from idp_sync.jobs import services
from idp_sync.jobs.models import Job
from idp_sync.memberships.models import MembershipRole

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
MEMBERS = 60
BATCH = 3


@pytest.fixture
def small_batches(live) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings = live.runtime.settings
    saved = settings.job_batch_size, settings.job_writers
    settings.job_batch_size, settings.job_writers = BATCH, 3
    yield
    settings.job_batch_size, settings.job_writers = saved


def _org_with_members(sdk) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    org = sdk.organizations.create_organization(name=unique("Overlap"))
    ids = []
    for _ in range(MEMBERS):
        user = sdk.user_management.create_user(email=f"{unique('ov')}@example.com")
        membership = sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=org.id
        )
        ids.append(membership.id)
    return org.id, sorted(ids)


def _change_default(live, org_id: str, slug: str) -> str:  # type: ignore[no-untyped-def]
    answer = httpx.put(
        f"{live.url}/organizations/{org_id}/authorization_settings",
        json={"default_role_slug": slug},
        headers=HEADERS,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job"]["id"])


def _roles(engine, ids: list[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with Session(engine) as db:
        return dict(
            db.execute(
                select(MembershipRole.membership_id, MembershipRole.role_slug).where(
                    MembershipRole.membership_id.in_(ids)
                )
            ).all()
        )


def _events(engine, org_id: str) -> Counter[str]:  # type: ignore[no-untyped-def]
    with Session(engine) as db:
        datas = db.scalars(
            select(Event.data).where(
                Event.organization_id == org_id, Event.event == "organization_membership.updated"
            )
        )
        return Counter(data["id"] for data in datas)


def _job(engine, job_id: str) -> Job:  # type: ignore[no-untyped-def]
    with Session(engine) as db:
        job = db.get(Job, job_id)
        assert job is not None
        return job


def test_a_later_batch_written_first_still_commits_after_the_earlier_one(
    live, worker, sdk, engine, small_batches, monkeypatch
) -> None:
    org_id, ids = _org_with_members(sdk)
    role = sdk.authorization.create_organization_role(org_id, name="After")
    real = services.write_batch
    seen = itertools.count()
    order: list[str] = []
    lock = threading.Lock()

    def uneven(session: Session, job: services.JobSpec, batch: services.Batch) -> int:
        if next(seen) % 3 == 0:
            time.sleep(0.3)  # this batch's writes are slow: the next ones finish first
        changed = real(session, job, batch)
        with lock:
            order.append(batch.ids[0])
        return changed

    monkeypatch.setattr(services, "write_batch", uneven)
    job_id = _change_default(live, org_id, role.slug)

    def finished() -> bool:
        state = _job(engine, job_id).state
        assert state in ("pending", "running", "succeeded"), state
        return state == "succeeded"

    wait_for(finished, timeout=60, interval=0.1)
    job = _job(engine, job_id)
    assert (job.done, job.changed) == (MEMBERS, MEMBERS)
    assert order != sorted(order), "the slow writes did not reorder the batches"
    assert set(_roles(engine, ids).values()) == {role.slug}
    assert _events(engine, org_id) == Counter(dict.fromkeys(ids, 1))


def test_a_job_stopped_mid_way_keeps_nothing_past_its_cursor(
    live, worker, sdk, engine, small_batches, monkeypatch
) -> None:
    org_id, ids = _org_with_members(sdk)
    role = sdk.authorization.create_organization_role(org_id, name="Stopped")
    real = services.write_batch
    seen = itertools.count()

    def stop_at_the_fourth(session: Session, job: services.JobSpec, batch: services.Batch) -> Any:
        if next(seen) == 3:  # an operator stops the job while batches are being written,
            # once the first three have committed (the fourth is written, not committed)
            wait_for(lambda: _job(engine, job.id).done == BATCH * 3, timeout=20, interval=0.02)
            with Session(engine) as db, db.begin():
                db.execute(update(Job).where(Job.id == job.id).values(state="cancelled"))
        return real(session, job, batch)

    monkeypatch.setattr(services, "write_batch", stop_at_the_fourth)
    job_id = _change_default(live, org_id, role.slug)

    wait_for(lambda: _job(engine, job_id).state == "cancelled", timeout=60, interval=0.1)
    time.sleep(1.0)  # writers already past the stop would have committed by now
    job = _job(engine, job_id)
    assert job.state == "cancelled" and job.cursor is not None
    assert job.done == BATCH * 3 and job.cursor == ids[BATCH * 3 - 1]
    roles = _roles(engine, ids)
    moved = [mid for mid in ids if roles[mid] == role.slug]
    assert moved == ids[: BATCH * 3]  # the committed prefix, and nothing past it
    assert _events(engine, org_id) == Counter(dict.fromkeys(moved, 1))
