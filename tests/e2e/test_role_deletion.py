"""Role deletion: refused for the default; otherwise a job reassigns holders, then the role
goes with a ``role.deleted`` / ``organization_role.deleted`` event."""

from __future__ import annotations

import httpx
import pytest
from workos._errors import ConflictError, NotFoundError
from workos.organization_membership._resource import RoleSingle

from conftest import API_KEY, unique, wait_for

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _wait_job(live, job_id: str) -> dict:
    def done() -> dict | None:
        job = httpx.get(f"{live.url}/jobs/{job_id}", headers=HEADERS).json()
        return job if job["state"] in ("succeeded", "failed") else None

    return wait_for(done, timeout=60)


def test_default_role_cannot_be_deleted(live) -> None:
    answer = httpx.delete(f"{live.url}/authorization/roles/member", headers=HEADERS)
    assert answer.status_code == 409
    assert answer.json()["code"] == "default_role_cannot_be_deleted"


def test_environment_role_deletion_reassigns_holders_to_the_default(live, worker, sdk) -> None:
    doomed = sdk.authorization.create_environment_role(slug=unique("doomed"), name="Doomed")
    org = sdk.organizations.create_organization(name=unique("Org"))
    holders = []
    for i in range(3):
        user = sdk.user_management.create_user(email=f"{unique('d')}{i}@example.com")
        m = sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=org.id, role=RoleSingle(role_slug=doomed.slug)
        )
        assert m.role.slug == doomed.slug
        holders.append(m.id)

    answer = httpx.delete(f"{live.url}/authorization/roles/{doomed.slug}", headers=HEADERS)
    assert answer.status_code == 202, answer.text
    # At once: hidden from lists and no longer assignable.
    assert doomed.slug not in [r.slug for r in sdk.authorization.list_environment_roles().data]
    job = _wait_job(live, answer.json()["id"])
    assert job["state"] == "succeeded" and job["progress"]["changed"] == 3

    for membership_id in holders:
        assert (
            sdk.organization_membership.get_organization_membership(membership_id).role.slug
            == "member"
        )
    with pytest.raises(NotFoundError):
        sdk.authorization.get_environment_role(doomed.slug)
    deleted = [
        e
        for e in sdk.events.list_events(events=["role.deleted"], limit=100).auto_paging_iter()
        if e.data.slug == doomed.slug
    ]
    assert len(deleted) == 1
    order = httpx.get(f"{live.url}/authorization/settings", headers=HEADERS).json()[
        "priority_order"
    ]
    assert doomed.slug not in order


def test_organization_role_deletion_through_the_sdk(live, worker, sdk) -> None:
    org = sdk.organizations.create_organization(name=unique("Org"))
    role = sdk.authorization.create_organization_role(org.id, name="Temp Admin")
    user = sdk.user_management.create_user(email=f"{unique('o')}@example.com")
    m = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id, role=RoleSingle(role_slug=role.slug)
    )
    sdk.authorization.delete_organization_role(org.id, role.slug)
    wait_for(
        lambda: sdk.organization_membership.get_organization_membership(m.id).role.slug == "member"
    )
    wait_for(lambda: _gone(sdk, org.id, role.slug))
    events = [
        e
        for e in sdk.events.list_events(
            events=["organization_role.deleted"], organization_id=org.id
        ).data
    ]
    assert [e.data.slug for e in events] == [role.slug]


def _gone(sdk, org_id: str, slug: str) -> bool:
    try:
        sdk.authorization.get_organization_role(org_id, slug)
    except NotFoundError:
        return True
    return False


def test_organization_default_override_cannot_be_deleted(live, sdk) -> None:
    org = sdk.organizations.create_organization(name=unique("Org"))
    role = sdk.authorization.create_organization_role(org.id, name="Org Default")
    answer = httpx.put(
        f"{live.url}/organizations/{org.id}/authorization_settings",
        json={"default_role_slug": role.slug},
        headers=HEADERS,
    )
    assert answer.status_code == 202, answer.text
    with pytest.raises(ConflictError) as refused:
        sdk.authorization.delete_organization_role(org.id, role.slug)
    assert refused.value.code == "default_role_cannot_be_deleted"


def test_role_deletion_removes_directory_mappings_to_it(live, worker, sdk) -> None:
    role = sdk.authorization.create_environment_role(slug=unique("mapped"), name="Mapped")
    org = sdk.organizations.create_organization(name=unique("Org"))
    directory = httpx.post(
        f"{live.url}/directories",
        json={"organization_id": org.id, "name": unique("dir"), "type": "generic scim v2.0"},
        headers=HEADERS,
    ).json()
    mappings = f"{live.url}/directories/{directory['id']}/group_role_mappings"
    kept_role = sdk.authorization.create_environment_role(slug=unique("kept"), name="Kept")
    for slug in (role.slug, kept_role.slug):
        created = httpx.post(
            mappings, json={"group": unique("Group"), "role_slug": slug}, headers=HEADERS
        )
        assert created.status_code == 201, created.text

    answer = httpx.delete(f"{live.url}/authorization/roles/{role.slug}", headers=HEADERS)
    assert answer.status_code == 202
    assert _wait_job(live, answer.json()["id"])["state"] == "succeeded"
    remaining = httpx.get(mappings, headers=HEADERS).json()["data"]
    assert [m["role_slug"] for m in remaining] == [kept_role.slug]
