"""Issue 4 point 7: directory users and groups in WorkOS's shape, through the SDK."""

from __future__ import annotations

import pytest
from dsync_helpers import create_group, create_user
from workos._errors import NotFoundError

from conftest import unique

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def test_list_and_get_users_and_groups(sdk, directory, scim) -> None:
    alice = create_user(
        scim,
        f"{unique('alice')}@example.com",
        externalId="00u-alice",
        title="CTO",
        **{ENTERPRISE: {"department": "Eng", "manager": {"value": "00u-boss"}}},
    )
    bob = create_user(scim, f"{unique('bob')}@example.com")
    eng = create_group(scim, unique("Eng"), [alice["id"], bob["id"]])
    ops = create_group(scim, unique("Ops"), [bob["id"]])

    users = sdk.directory_sync.list_users(directory=directory["id"], limit=10)
    assert [u.id for u in users.data] == [bob["id"], alice["id"]]  # newest first
    got = sdk.directory_sync.get_user(alice["id"])
    assert got.directory_id == directory["id"]
    assert got.organization_id == directory["organization_id"]
    assert got.idp_id == "00u-alice"
    assert got.email == alice["userName"].lower()
    assert (got.first_name, got.last_name) == ("Ada", "Lovelace")
    assert got.username == alice["userName"]
    assert got.job_title == "CTO"
    assert got.state == "active"
    assert got.custom_attributes == {"department": "Eng", "manager_id": "00u-boss"}
    assert got.raw_attributes["title"] == "CTO"
    assert [g.id for g in got.groups] == [eng["id"]]

    in_ops = sdk.directory_sync.list_users(group=ops["id"])
    assert [u.id for u in in_ops.data] == [bob["id"]]
    by_email = sdk.directory_sync.list_users(directory=directory["id"], email=bob["userName"])
    assert [u.id for u in by_email.data] == [bob["id"]]

    groups = sdk.directory_sync.list_groups(directory=directory["id"])
    assert [g.id for g in groups.data] == [ops["id"], eng["id"]]
    of_bob = sdk.directory_sync.list_groups(user=bob["id"], order="asc")
    assert [g.id for g in of_bob.data] == [eng["id"], ops["id"]]
    group = sdk.directory_sync.get_group(eng["id"])
    assert group.name == eng["displayName"]
    assert group.directory_id == directory["id"]


def test_deleted_and_unknown_are_404(sdk, scim) -> None:
    user = create_user(scim)
    scim.delete(f"/Users/{user['id']}")
    with pytest.raises(NotFoundError):
        sdk.directory_sync.get_user(user["id"])
    with pytest.raises(NotFoundError):
        sdk.directory_sync.get_group("directory_group_missing")


def test_a_filter_is_required(api) -> None:
    assert api.get("/directory_users").status_code == 422
    assert api.get("/directory_groups").status_code == 422


def test_pagination(sdk, directory, scim) -> None:
    made = [create_user(scim)["id"] for _ in range(5)]
    seen = [
        u.id
        for u in sdk.directory_sync.list_users(
            directory=directory["id"], limit=2
        ).auto_paging_iter()
    ]
    assert seen == list(reversed(made))


def test_nullable_fields_are_present(api, directory, scim) -> None:
    created = scim.post(
        "/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "n"}
    ).json()
    body = api.get(f"/directory_users/{created['id']}").json()
    for field in ("email", "first_name", "last_name", "job_title", "role"):
        assert field in body and body[field] is None
    assert body["roles"] == [] and body["groups"] == []
