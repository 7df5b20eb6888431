"""Issue 6 points 4 and 6: reconciliation repairs drift; dry runs report without writing."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from workos.organization_membership._resource import RoleSingle

from conftest import API_KEY, unique, wait_for
from idp_sync.events.models import Event
from idp_sync.jobs.models import Job
from idp_sync.memberships.models import MembershipRole
from idp_sync.rbac.models import Role

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _job_done(live, job_id: str) -> dict:
    return wait_for(
        lambda: (
            (j := httpx.get(f"{live.url}/jobs/{job_id}", headers=HEADERS).json())["state"]
            in ("succeeded", "failed")
            and j
        ),
        timeout=60,
    )


def _org_with_members(sdk, n: int, role: str | None = None):
    org = sdk.organizations.create_organization(name=unique("Org"))
    members = []
    for i in range(n):
        user = sdk.user_management.create_user(email=f"{unique('r')}{i}@example.com")
        members.append(
            sdk.organization_membership.create_organization_membership(
                user_id=user.id,
                organization_id=org.id,
                role=RoleSingle(role_slug=role) if role else None,
            )
        )
    return org, members


def test_reconcile_repairs_a_membership_changed_behind_the_services_back(
    live, worker, sdk, engine
) -> None:
    org, members = _org_with_members(sdk, 3)
    intruder = sdk.authorization.create_environment_role(slug=unique("intruder"), name="I")
    with Session(engine) as db, db.begin():
        role_id = db.scalar(select(Role.id).where(Role.slug == intruder.slug))
        db.execute(
            update(MembershipRole)
            .where(MembershipRole.membership_id == members[1].id)
            .values(role_id=role_id, role_slug=intruder.slug)
        )
    drifted = sdk.organization_membership.get_organization_membership(members[1].id)
    assert drifted.role.slug == intruder.slug

    preview = httpx.post(
        f"{live.url}/jobs",
        json={"type": "reconcile", "organization_id": org.id, "dry_run": True},
        headers=HEADERS,
    ).json()
    assert preview["examined"] == 3 and preview["changes"] == 1
    assert preview["transitions"] == [{"from": [intruder.slug], "to": ["member"], "count": 1}]

    answer = httpx.post(
        f"{live.url}/jobs", json={"type": "reconcile", "organization_id": org.id}, headers=HEADERS
    )
    assert answer.status_code == 202
    job = _job_done(live, answer.json()["id"])
    assert job["state"] == "succeeded"
    assert job["progress"] == {"total": 3, "done": 3, "changed": 1}
    assert (
        sdk.organization_membership.get_organization_membership(members[1].id).role.slug == "member"
    )

    again = httpx.post(
        f"{live.url}/jobs", json={"type": "reconcile", "organization_id": org.id}, headers=HEADERS
    ).json()
    assert _job_done(live, again["id"])["progress"]["changed"] == 0  # healthy: no differences


def test_dry_run_of_a_role_deletion_writes_nothing(live, sdk, engine) -> None:
    doomed = sdk.authorization.create_environment_role(slug=unique("dry"), name="Dry")
    _org, members = _org_with_members(sdk, 2, role=doomed.slug)
    with Session(engine) as db:
        jobs_before = db.scalar(select(func.count()).select_from(Job))
        events_before = db.scalar(select(func.count()).select_from(Event))

    answer = httpx.delete(
        f"{live.url}/authorization/roles/{doomed.slug}", params={"dry_run": "true"}, headers=HEADERS
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["changes"] == 2
    assert body["transitions"] == [{"from": [doomed.slug], "to": ["member"], "count": 2}]
    assert {s["organization_membership_id"] for s in body["sample"]} == {m.id for m in members}

    # Nothing happened: the role is still there and assigned, no job, no event.
    assert sdk.authorization.get_environment_role(doomed.slug).slug == doomed.slug
    assert (
        sdk.organization_membership.get_organization_membership(members[0].id).role.slug
        == doomed.slug
    )
    with Session(engine) as db:
        assert db.scalar(select(func.count()).select_from(Job)) == jobs_before
        assert db.scalar(select(func.count()).select_from(Event)) == events_before


def test_dry_run_of_an_organization_default_change(live, sdk) -> None:
    org, _members = _org_with_members(sdk, 3)
    role = sdk.authorization.create_organization_role(org.id, name="Org Default")
    answer = httpx.put(
        f"{live.url}/organizations/{org.id}/authorization_settings",
        params={"dry_run": "true"},
        json={"default_role_slug": role.slug},
        headers=HEADERS,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["changes"] == 3
    settings = httpx.get(
        f"{live.url}/organizations/{org.id}/authorization_settings", headers=HEADERS
    )
    assert settings.json()["default_role_slug"] is None


def test_dry_run_of_environment_settings_changes_writes_nothing(live, sdk, engine) -> None:
    """Default role, multiple roles and priority order of the environment: previewed with
    ``dry_run=true``, nothing changes (settings, jobs, events)."""
    org, _members = _org_with_members(sdk, 2)
    role = sdk.authorization.create_environment_role(slug=unique("envdef"), name="Env Default")
    before = httpx.get(f"{live.url}/authorization/settings", headers=HEADERS).json()
    with Session(engine) as db:
        jobs_before = db.scalar(select(func.count()).select_from(Job))
        events_before = db.scalar(select(func.count()).select_from(Event))
    answer = httpx.put(
        f"{live.url}/authorization/settings",
        params={"dry_run": "true"},
        json={"default_role_slug": role.slug},
        headers=HEADERS,
    )
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["object"] == "dry_run"
    assert preview["changes"] >= 2  # at least this organization's two default members
    assert org.id  # its members use the environment default: they move with it
    assert all(t["to"] == [role.slug] for t in preview["transitions"])
    assert sum(t["count"] for t in preview["transitions"]) == preview["changes"]
    toggle = httpx.put(
        f"{live.url}/authorization/settings",
        params={"dry_run": "true"},
        json={"multiple_roles_enabled": not before["multiple_roles_enabled"]},
        headers=HEADERS,
    )
    assert toggle.status_code == 200 and toggle.json()["object"] == "dry_run", toggle.text
    after = httpx.get(f"{live.url}/authorization/settings", headers=HEADERS).json()
    assert after == before
    with Session(engine) as db:
        assert db.scalar(select(func.count()).select_from(Job)) == jobs_before
        assert db.scalar(select(func.count()).select_from(Event)) == events_before


def test_beat_starts_one_reconciliation_at_a_time(live, engine) -> None:
    """Issue 6 point 4, on a schedule: beat sends ``idp_sync.jobs.schedule_reconcile``
    every ``IDP_SYNC_RECONCILE_INTERVAL_SECONDS``; it starts an environment-wide reconcile
    job unless one is already pending or running. (No worker here: the job is cancelled
    at the end, so a later worker skips it.)"""
    app = live.runtime.celery
    entry = app.conf.beat_schedule["reconcile"]
    assert entry["task"] == "idp_sync.jobs.schedule_reconcile"
    assert entry["schedule"] == live.runtime.settings.reconcile_interval_seconds
    task = app.tasks["idp_sync.jobs.schedule_reconcile"]
    first = task.apply().get()
    try:
        assert first is not None and first.startswith("job_")
        assert task.apply().get() is None  # one is under way: no second one
        with Session(engine) as db:
            job = db.get(Job, first)
            assert job is not None
            assert (job.type, job.params, job.created_by) == ("reconcile", {}, "beat")
    finally:
        with Session(engine) as db, db.begin():
            db.execute(update(Job).where(Job.id == first).values(state="cancelled"))
