"""Issue 6 point 5: SCIM updates that arrive while a job walks the same memberships end in
the state the resolver gives for the final configuration (row locks, PostgreSQL, a real
worker running the job and the directory sync tasks at once)."""

from __future__ import annotations

import threading

from dsync_helpers import create_group, create_user, make_directory, make_org, patch, scim_client

from conftest import unique, wait_for

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim

USERS = 40


def _roles(api, org_id: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Directory users' email -> their membership's role slug, for the organization."""
    found: dict[str, str] = {}
    after = None
    while True:
        params = {"organization_id": org_id, "limit": 100, **({"after": after} if after else {})}
        page = api.get("/user_management/organization_memberships", params=params).json()
        for m in page["data"]:
            found[m["user"]["email"]] = m["role"]["slug"]
        after = page["list_metadata"]["after"]
        if not after:
            return found


def test_scim_group_changes_during_a_default_role_job_end_resolved(live, worker, api, sdk) -> None:
    org = make_org(api)
    engineer = sdk.authorization.create_environment_role(slug=unique("eng"), name="Engineer")
    staff = sdk.authorization.create_organization_role(org["id"], name="Staff")
    directory = make_directory(api, "okta scim v2.0", org["id"])
    group_name = unique("Engineering")
    answer = api.post(
        f"/directories/{directory['id']}/group_role_mappings",
        json={"group": group_name, "role_slug": engineer.slug},
    )
    assert answer.status_code == 201, answer.text
    settings = live.runtime.settings
    batch_size = settings.job_batch_size
    settings.job_batch_size = 3  # many small batches: the job interleaves with the pushes
    try:
        with scim_client(directory) as scim:
            emails = [f"{unique('dj')}@example.com" for _ in range(USERS)]
            users = [create_user(scim, email) for email in emails]
            wait_for(lambda: len(_roles(api, org["id"])) == USERS, timeout=30)
            group = create_group(scim, group_name)
            joined = users[::2]  # every other user joins the mapped group during the job

            def push() -> None:
                for user in joined:
                    answer = patch(
                        scim,
                        f"/Groups/{group['id']}",
                        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
                    )
                    assert answer.status_code in (200, 204), answer.text

            pusher = threading.Thread(target=push)
            answer = api.put(
                f"/organizations/{org['id']}/authorization_settings",
                json={"default_role_slug": staff.slug},
            )
            assert answer.status_code == 202, answer.text
            pusher.start()
            job_id = answer.json()["job"]["id"]
            pusher.join(60)
            assert not pusher.is_alive()
    finally:
        settings.job_batch_size = batch_size

    def job_state() -> str | None:
        state = api.get(f"/jobs/{job_id}").json()["state"]
        assert state != "failed"
        return state if state == "succeeded" else None

    wait_for(job_state, timeout=60)
    in_group = {u["userName"] for u in joined}
    expected = {email: engineer.slug if email in in_group else staff.slug for email in emails}
    wait_for(lambda: _roles(api, org["id"]) == expected, timeout=30, interval=0.2)

    # A reconciliation from current state finds nothing to repair.
    answer = api.post("/jobs", json={"type": "reconcile", "organization_id": org["id"]})
    assert answer.status_code == 202, answer.text
    reconcile_id = answer.json()["id"]
    wait_for(lambda: api.get(f"/jobs/{reconcile_id}").json()["state"] == "succeeded", timeout=30)
    progress = api.get(f"/jobs/{reconcile_id}").json()["progress"]
    assert progress["done"] == USERS and progress["changed"] == 0
