"""Issue 4 points 2 and 8: SCIM Groups, members set-based, member PATCH answering 204."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from dsync_helpers import GROUP_SCHEMA, assert_scim_error, create_group, create_user, patch

from conftest import unique

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim


def _member_ids(scim, group_id: str) -> set[str]:
    return {m["value"] for m in scim.get(f"/Groups/{group_id}").json().get("members", [])}


def test_create_with_members_get_replace_delete(scim) -> None:
    alice, bob = create_user(scim), create_user(scim)
    group = create_group(scim, unique("Engineering"), [alice["id"]])
    assert group["schemas"] == [GROUP_SCHEMA]
    assert group["id"].startswith("directory_group_")
    assert [m["value"] for m in group["members"]] == [alice["id"]]
    assert group["members"][0]["display"] == alice["userName"]
    assert group["meta"]["resourceType"] == "Group"

    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": group["displayName"] + "-2",
        "members": [{"value": bob["id"]}],
    }
    replaced = scim.put(f"/Groups/{group['id']}", json=body).json()
    assert replaced["displayName"].endswith("-2")
    assert [m["value"] for m in replaced["members"]] == [bob["id"]]

    renamed = scim.put(
        f"/Groups/{group['id']}", json={"schemas": [GROUP_SCHEMA], "displayName": "kept-members"}
    ).json()
    assert [m["value"] for m in renamed["members"]] == [bob["id"]]

    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert_scim_error(scim.get(f"/Groups/{group['id']}"), 404)


def test_display_name_is_unique_case_insensitively(scim) -> None:
    name = unique("Sales")
    create_group(scim, name)
    again = scim.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": name.upper()})
    assert_scim_error(again, 409, "uniqueness")
    assert_scim_error(scim.post("/Groups", json={"schemas": [GROUP_SCHEMA]}), 400, "invalidValue")


def test_member_patch_is_204_and_set_based(scim) -> None:
    users = [create_user(scim)["id"] for _ in range(4)]
    group = create_group(scim)
    path = f"/Groups/{group['id']}"
    add = {"op": "add", "path": "members", "value": [{"value": u} for u in users[:3]]}
    answer = patch(scim, path, add)
    assert answer.status_code == 204 and answer.content == b""
    assert _member_ids(scim, group["id"]) == set(users[:3])
    assert patch(scim, path, add).status_code == 204  # adding existing members: a no-op
    assert _member_ids(scim, group["id"]) == set(users[:3])
    remove_one = {"op": "remove", "path": f'members[value eq "{users[0]}"]'}
    assert patch(scim, path, remove_one).status_code == 204
    remove_list = {"op": "remove", "path": "members", "value": [{"value": users[1]}]}
    assert patch(scim, path, remove_list).status_code == 204
    assert _member_ids(scim, group["id"]) == {users[2]}
    replace = {"op": "replace", "path": "members", "value": [{"value": users[3]}]}
    assert patch(scim, path, replace).status_code == 204
    assert _member_ids(scim, group["id"]) == {users[3]}
    assert patch(scim, path, {"op": "remove", "path": "members"}).status_code == 204
    assert _member_ids(scim, group["id"]) == set()


def test_member_patch_with_attributes_answers_without_members(scim) -> None:
    user = create_user(scim)
    group = create_group(scim)
    answer = patch(
        scim,
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
        excludedAttributes="members",
    )
    assert answer.status_code == 200
    assert "members" not in answer.json()
    assert answer.json()["displayName"] == group["displayName"]


def test_unknown_and_foreign_member_ids_are_ignored(api, scim) -> None:
    from dsync_helpers import make_directory, scim_client

    with scim_client(make_directory(api)) as other:
        foreign = create_user(other)["id"]
    group = create_group(scim, members=[foreign, "directory_user_nope"])
    assert group.get("members", []) == []


def test_excluded_members_and_group_filters(scim) -> None:
    user = create_user(scim)
    name = unique("Ops")
    group = create_group(scim, name, [user["id"]])
    listed = scim.get(
        "/Groups",
        params={"filter": f'displayName eq "{name.lower()}"', "excludedAttributes": "members"},
    ).json()
    assert listed["totalResults"] == 1
    assert "members" not in listed["Resources"][0]
    # Entra ID checks membership this way.
    member_filter = f'id eq "{group["id"]}" and members[value eq "{user["id"]}"]'
    assert scim.get("/Groups", params={"filter": member_filter}).json()["totalResults"] == 1
    other_user = create_user(scim)
    missing = f'id eq "{group["id"]}" and members[value eq "{other_user["id"]}"]'
    assert scim.get("/Groups", params={"filter": missing}).json()["totalResults"] == 0


@pytest.mark.parametrize("size", [3000])
def test_large_member_patch_in_one_request(scim, engine, size) -> None:
    """Point 8: thousands of members in one PATCH: set-based statements, constant response."""
    directory_id = scim.base_url.path.rstrip("/").split("/")[-1]
    rows = [
        {"id": f"directory_user_{directory_id[-8:]}{i:018d}", "d": directory_id}
        for i in range(size)
    ]
    with engine.begin() as conn:
        org = conn.execute(
            sa.text("SELECT organization_id FROM directories WHERE id = :d"), {"d": directory_id}
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO directory_users (id, directory_id, organization_id, user_name, "
                "user_name_key, active, attributes, version, created_at, updated_at) VALUES "
                "(:id, :d, :org, :id, :id, true, '{}', 1, now(), now())"
            ),
            [{**r, "org": org} for r in rows],
        )
    group = create_group(scim)
    value = [{"value": r["id"]} for r in rows]
    answer = patch(scim, f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": value})
    assert answer.status_code == 204
    with engine.connect() as conn:
        count = conn.execute(
            sa.text("SELECT count(*) FROM directory_group_members WHERE group_id = :g"),
            {"g": group["id"]},
        ).scalar_one()
    assert count == size
    removal = {"op": "remove", "path": "members", "value": value[: size // 2]}
    assert patch(scim, f"/Groups/{group['id']}", removal).status_code == 204
    listed = scim.get("/Groups", params={"filter": f'id eq "{group["id"]}"'}).json()
    assert len(listed["Resources"][0]["members"]) == size - size // 2
