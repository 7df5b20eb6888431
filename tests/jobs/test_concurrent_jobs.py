"""Issue 6 point 5: two jobs touching the same memberships, run by concurrent workers on
PostgreSQL, end in the state the resolver gives for the final configuration."""

from __future__ import annotations

import threading

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from conftest import API_KEY, unique, wait_for
from idp_sync.memberships.models import MembershipRole, OrganizationMembership

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
