"""Issue 4 point 3: Entra ID's request sequence, with its quirks (fixtures in
tests/fixtures/entra/, after Microsoft's "Develop and plan provisioning for a SCIM endpoint"
and its SCIM 2.0 compatibility page)."""

from __future__ import annotations

from dsync_helpers import make_directory, scim_client
from idp_fixtures import load

from conftest import unique

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def test_entra_user_lifecycle(api) -> None:
    tag = unique("e").lower()
    with scim_client(make_directory(api, "azure scim v2.0")) as scim:
        body = load("entra/create-user.json", tag=tag)
        # Entra ID queries first, with + for spaces in the query string.
        lookup = scim.get(f"/Users?filter=userName+eq+%22{body['userName']}%22")
        assert lookup.status_code == 200 and lookup.json()["totalResults"] == 0
        created = scim.post("/Users", json=body)
        assert created.status_code == 201
        user_id = created.json()["id"]
        path = f"/Users/{user_id}"

        updated = scim.patch(path, json=load("entra/update-user-multi-valued.json", tag=tag))
        assert updated.status_code == 200, updated.text
        assert updated.json()["emails"] == [
            {"primary": True, "type": "work", "value": f"updatedEmail.{tag}@microsoft.com"}
        ]
        assert updated.json()["name"]["familyName"] == "updatedFamilyName"

        # A filtered add on an absent entry creates it; extension attributes by URN path.
        added = scim.patch(path, json=load("entra/add-phone-by-filter.json")).json()
        assert added["phoneNumbers"] == [{"type": "work", "value": "+1 555 0100"}]
        assert added[ENTERPRISE]["department"] == "Sales"

        # Path-less replace with dotted and full-URN keys, and "True" as a string.
        pathless = scim.patch(path, json=load("entra/pathless-replace-dotted-and-urn-keys.json"))
        assert pathless.status_code == 200, pathless.text
        result = pathless.json()
        assert result["displayName"] == "Pat Doe"
        assert result["name"]["givenName"] == "Pat"
        assert result["name"]["familyName"] == "updatedFamilyName"
        assert result[ENTERPRISE] == {
            "department": "Sales",
            "employeeNumber": "1234",
            "manager": {"value": "mgr-1"},
        }
        assert result["active"] is True

        # Entra ID disables with "False" as a string.
        disabled = scim.patch(path, json=load("entra/disable-user-string-boolean.json"))
        assert disabled.status_code == 200
        assert disabled.json()["active"] is False
        assert scim.delete(path).status_code == 204


def test_entra_groups(api) -> None:
    tag = unique("e").lower()
    with scim_client(make_directory(api, "azure scim v2.0")) as scim:
        users = [
            scim.post("/Users", json=load("entra/create-user.json", tag=f"{tag}{i}")).json()["id"]
            for i in range(3)
        ]
        # Group creation carries an extra Microsoft schema URN.
        created = scim.post("/Groups", json=load("entra/create-group.json", tag=tag))
        assert created.status_code == 201, created.text
        group = created.json()
        assert group["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Group"]
        path = f"/Groups/{group['id']}"
        for user_id in users:
            added = scim.patch(path, json=load("entra/add-member.json", user_id=user_id))
            assert added.status_code == 204
        # Entra ID reads groups without members.
        fetched = scim.get(path, params={"excludedAttributes": "members"}).json()
        assert "members" not in fetched
        found = scim.get(
            "/Groups",
            params={
                "filter": f'displayName eq "displayName {tag}"',
                "excludedAttributes": "members",
            },
        ).json()
        assert found["totalResults"] == 1 and "members" not in found["Resources"][0]
        # Remove with a value list removes only those members.
        removed = scim.patch(path, json=load("entra/remove-member.json", user_id=users[0]))
        assert removed.status_code == 204
        members = {m["value"] for m in scim.get(path).json()["members"]}
        assert members == set(users[1:])
