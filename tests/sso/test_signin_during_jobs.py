"""Issue 6 point 5: SSO sign-ins that arrive while a job walks the same memberships end in
the state the resolver gives for the final configuration (row locks, PostgreSQL, a real
worker running the job and the sign-in tasks at once)."""

from __future__ import annotations

import threading

import httpx

from conftest import unique, wait_for
from sso.sso_helpers import Setup
from sso.test_sso_flow import sign_in

USERS = 24


def _roles(http: httpx.Client, org_id: str) -> dict[str, str]:
    found: dict[str, str] = {}
    after = None
    while True:
        params = {"organization_id": org_id, "limit": 100, **({"after": after} if after else {})}
        page = http.get("/user_management/organization_memberships", params=params).json()
        for m in page["data"]:
            found[m["user"]["email"]] = m["role"]["slug"]
        after = page["list_metadata"]["after"]
        if not after:
            return found


def test_sign_ins_during_a_default_role_job_end_resolved(
    sso_live, sso_sdk, http, setup: Setup, sso_worker
) -> None:
    admin = sso_sdk.authorization.create_organization_role(
        setup.org_id, name="Admin", slug=unique("org-admin")
    )
    staff = sso_sdk.authorization.create_organization_role(
        setup.org_id, name="Staff", slug=unique("org-staff")
    )
    answer = http.post(
        f"/connections/{setup.connection_id}/group_role_mappings",
        json={"group": "Admins", "role_slug": admin.slug},
    )
    assert answer.status_code == 201, answer.text
    emails = [f"{unique('sj')}@example.com" for _ in range(USERS)]
    for email in emails:
        user = sso_sdk.user_management.create_user(email=email)
        sso_sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=setup.org_id
        )
    signing_in = emails[::2]  # half of them sign in, in the mapped group, during the job

    def sign_ins() -> None:
        for email in signing_in:
            result, _ = sign_in(sso_sdk, http, setup, ["Admins"], name_id=email)
            assert result.profile.role.slug == admin.slug

    settings = sso_live.runtime.settings
    batch_size = settings.job_batch_size
    settings.job_batch_size = 2  # many small batches: the job interleaves with the sign-ins
    try:
        signer = threading.Thread(target=sign_ins)
        answer = http.put(
            f"/organizations/{setup.org_id}/authorization_settings",
            json={"default_role_slug": staff.slug},
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job"]["id"]
        signer.start()
        signer.join(90)
        assert not signer.is_alive()

        def job_done() -> bool:
            state = http.get(f"/jobs/{job_id}").json()["state"]
            assert state != "failed"
            return state == "succeeded"

        wait_for(job_done, timeout=60)
    finally:
        settings.job_batch_size = batch_size

    expected = {e: admin.slug if e in signing_in else staff.slug for e in emails}
    wait_for(lambda: _roles(http, setup.org_id) == expected, timeout=30, interval=0.2)

    answer = http.post("/jobs", json={"type": "reconcile", "organization_id": setup.org_id})
    assert answer.status_code == 202, answer.text
    reconcile_id = answer.json()["id"]
    wait_for(lambda: http.get(f"/jobs/{reconcile_id}").json()["state"] == "succeeded", 30)
    progress = http.get(f"/jobs/{reconcile_id}").json()["progress"]
    assert progress["done"] == USERS and progress["changed"] == 0
