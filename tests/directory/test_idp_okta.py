"""Issue 4 point 3: Okta's request sequence, with its quirks (fixtures in
tests/fixtures/okta/, after Okta's "SCIM 2.0 reference" and its Runscope spec tests)."""

from __future__ import annotations

from dsync_helpers import make_directory, scim_client
from idp_fixtures import load

from conftest import unique

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim


def test_okta_user_lifecycle(api) -> None:
    tag = unique("o").lower()
    with scim_client(make_directory(api, "okta scim v2.0")) as scim:
        body = load("okta/scim-20-create-user.json", tag=tag)
        # Okta first looks the user up by userName, then creates it.
        lookup = scim.get(
            "/Users",
            params={"filter": f'userName eq "{body["userName"]}"', "startIndex": 1, "count": 100},
        )
        assert lookup.json()["totalResults"] == 0
        created = scim.post("/Users", json=body)
        assert created.status_code == 201
        user = created.json()
        assert "password" not in user  # RFC 7643 §4.1.1: never returned (never stored)
        assert user["groups"] == [] and user["locale"] == "en-US"
        # Okta retries a create it believes failed: 409 uniqueness, then it looks up again.
        again = scim.post("/Users", json=body)
        assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
        # Okta deactivates with a path-less replace of {"active": false}; it never deletes.
        deactivated = scim.patch(
            f"/Users/{user['id']}", json=load("okta/scim-20-deactivate-user.json")
        )
        assert deactivated.status_code == 200
        assert deactivated.json()["active"] is False
        assert deactivated.json()["userName"] == body["userName"]
        listed = scim.get("/Users", params={"filter": f'userName eq "{body["userName"]}"'})
        assert listed.json()["Resources"][0]["active"] is False


def test_okta_group_push(api) -> None:
    tag = unique("o").lower()
    with scim_client(make_directory(api, "okta scim v2.0")) as scim:
        user = scim.post("/Users", json=load("okta/scim-20-create-user.json", tag=tag)).json()
        other_tag = unique("o").lower()
        other = scim.post("/Users", json=load("okta/scim-20-create-user.json", tag=other_tag))
        other_id = other.json()["id"]
        # Okta sends members inside POST /Groups.
        created = scim.post(
            "/Groups", json=load("okta/scim-20-create-group.json", tag=tag, user_id=user["id"])
        )
        assert created.status_code == 201
        group = created.json()
        assert [m["value"] for m in group["members"]] == [user["id"]]
        path = f"/Groups/{group['id']}"

        # Okta renames with a path-less replace carrying the group's own id: no failure,
        # and the members stay.
        rename = load("okta/scim-20-rename-group.json", tag=tag, group_id=group["id"])
        assert scim.patch(path, json=rename).status_code == 204
        renamed = scim.get(path).json()
        assert renamed["displayName"] == f"Test SCIMv2 {tag} renamed"
        assert [m["value"] for m in renamed["members"]] == [user["id"]]

        # Adding an existing member is a no-op; adding a new one adds it.
        add_existing = load("okta/scim-20-add-members.json", tag=tag, user_id=user["id"])
        assert scim.patch(path, json=add_existing).status_code == 204
        add_other = load("okta/scim-20-add-members.json", tag=tag, user_id=other_id)
        assert scim.patch(path, json=add_other).status_code == 204
        members = {m["value"] for m in scim.get(path).json()["members"]}
        assert members == {user["id"], other_id}

        remove = load("okta/scim-20-remove-member.json", user_id=user["id"])
        assert scim.patch(path, json=remove).status_code == 204
        assert [m["value"] for m in scim.get(path).json()["members"]] == [other_id]

        # Okta's PUT carries the full member list.
        put = load(
            "okta/scim-20-replace-group.json", tag=tag, group_id=group["id"], user_id=user["id"]
        )
        replaced = scim.put(path, json=put)
        assert replaced.status_code == 200
        assert [m["value"] for m in replaced.json()["members"]] == [user["id"]]
        assert replaced.json()["displayName"] == f"Test SCIMv2 {tag} put"
