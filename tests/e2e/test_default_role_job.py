"""Issue 3 point 8: changing the default role is done by a worker, in batches, with progress."""

from __future__ import annotations

import httpx

from conftest import API_KEY, unique, wait_for


def test_default_role_change_runs_on_a_real_worker(live, worker, sdk) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    new_default = unique("staff")
    sdk.authorization.create_environment_role(slug=new_default, name="Staff")
    org = sdk.organizations.create_organization(name=unique("Acme"))
    pinned = sdk.authorization.create_environment_role(slug=unique("pinned"), name="Pinned")
    members = []
    for i in range(120):  # more than two batches of 50 (the test settings' batch size)
        user = sdk.user_management.create_user(email=f"{unique('u')}-{i}@example.com")
        members.append(
            sdk.organization_membership.create_organization_membership(
                user_id=user.id, organization_id=org.id
            )
        )
    from workos.organization_membership._resource import RoleSingle

    kept = sdk.organization_membership.update_organization_membership(
        members[0].id, role=RoleSingle(role_slug=pinned.slug)
    )
    assert kept.role.slug == pinned.slug
    old_default = httpx.get(f"{live.url}/authorization/settings", headers=headers).json()
    try:
        answer = httpx.put(
            f"{live.url}/authorization/settings",
            json={"default_role_slug": new_default},
            headers=headers,
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job"]["id"]

        def finished() -> dict | None:
            job = httpx.get(f"{live.url}/jobs/{job_id}", headers=headers).json()
            return job if job["state"] in ("succeeded", "failed") else None

        job = wait_for(finished, timeout=60)
        assert job["state"] == "succeeded", job
        assert job["progress"]["changed"] >= 119
        assert job["progress"]["done"] >= job["progress"]["changed"]
        roles = {
            m.id: m.role.slug
            for m in sdk.organization_membership.list_organization_memberships(
                organization_id=org.id, limit=100
            ).auto_paging_iter()
        }
        assert roles[kept.id] == pinned.slug  # set by API: not on the default, untouched
        assert {slug for mid, slug in roles.items() if mid != kept.id} == {new_default}
        updated = [
            e
            for e in sdk.events.list_events(
                events=["organization_membership.updated"], organization_id=org.id, limit=100
            ).auto_paging_iter()
            if e.data.role.slug == new_default
        ]
        assert len(updated) == 119  # one per membership that changed, none twice
        # GET /jobs, WorkOS list shape, filtered by type and by state (issue 6 point 1).
        listed = httpx.get(
            f"{live.url}/jobs",
            params={"type": "default_role_change", "state": "succeeded", "limit": 100},
            headers=headers,
        ).json()
        assert listed["object"] == "list" and set(listed["list_metadata"]) >= {"before", "after"}
        assert job_id in {j["id"] for j in listed["data"]}
        assert {(j["type"], j["state"]) for j in listed["data"]} == {
            ("default_role_change", "succeeded")
        }
        running = httpx.get(
            f"{live.url}/jobs", params={"state": "running,failed"}, headers=headers
        ).json()
        assert job_id not in {j["id"] for j in running["data"]}
        assert {j["state"] for j in running["data"]} <= {"running", "failed"}
    finally:
        httpx.put(
            f"{live.url}/authorization/settings",
            json={"default_role_slug": old_default["default_role_slug"]},
            headers=headers,
        )
