"""Issue 4 point 2: SCIM Users (RFC 7644 §3.3-§3.6), filters, paging, projection, errors."""

from __future__ import annotations

import httpx
import pytest
from dsync_helpers import USER_SCHEMA, assert_scim_error, create_user, patch, user_body

from conftest import unique

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def test_create_get_replace_delete(scim) -> None:
    body = user_body(externalId="00u1", title="Engineer")
    body[ENTERPRISE] = {"department": "R&D", "employeeNumber": "42"}
    answer = scim.post("/Users", json=body)
    assert answer.status_code == 201
    assert answer.headers["content-type"].startswith("application/scim+json")
    created = answer.json()
    assert created["schemas"] == [USER_SCHEMA, ENTERPRISE]
    assert created["id"].startswith("directory_user_")
    assert created["userName"] == body["userName"]
    assert created[ENTERPRISE]["department"] == "R&D"
    assert created["meta"]["resourceType"] == "User"
    assert answer.headers["location"] == created["meta"]["location"]
    assert created["meta"]["location"].endswith(f"/Users/{created['id']}")

    fetched = scim.get(f"/Users/{created['id']}").json()
    assert fetched == created

    replacement = user_body(body["userName"], externalId="00u1", displayName="Ada L.")
    replaced = scim.put(f"/Users/{created['id']}", json=replacement).json()
    assert replaced["displayName"] == "Ada L."
    assert ENTERPRISE not in replaced  # PUT replaces (RFC 7644 §3.5.1)
    assert "title" not in replaced
    assert replaced["meta"]["version"] != created["meta"]["version"]

    assert scim.delete(f"/Users/{created['id']}").status_code == 204
    assert_scim_error(scim.get(f"/Users/{created['id']}"), 404)
    assert_scim_error(scim.delete(f"/Users/{created['id']}"), 404)
    # The userName is free again once the user is deleted.
    create_user(scim, body["userName"])


def test_unknown_attributes_are_kept(scim) -> None:
    created = create_user(scim, **{"urn:example:custom:1.0:User": {"badge": 7}, "nickName": "A"})
    fetched = scim.get(f"/Users/{created['id']}").json()
    assert fetched["urn:example:custom:1.0:User"] == {"badge": 7}
    assert fetched["schemas"] == [USER_SCHEMA, "urn:example:custom:1.0:User"]  # RFC 7643 §3
    assert fetched["nickName"] == "A"


def test_user_name_is_unique_case_insensitively(scim) -> None:
    name = f"{unique('Dup')}@Example.com"
    create_user(scim, name)
    assert_scim_error(scim.post("/Users", json=user_body(name.upper())), 409, "uniqueness")
    other = create_user(scim)
    renamed = scim.put(f"/Users/{other['id']}", json=user_body(name.lower()))
    assert_scim_error(renamed, 409, "uniqueness")
    assert scim.get(f"/Users/{other['id']}").json()["userName"] == other["userName"]


def test_same_user_name_in_another_directory_is_fine(api, scim) -> None:
    from dsync_helpers import make_directory, scim_client

    name = f"{unique('same')}@example.com"
    create_user(scim, name)
    with scim_client(make_directory(api)) as other:
        create_user(other, name)


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"schemas": [USER_SCHEMA]}, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": ""}, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": "x", "active": "maybe"}, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": 12}, "invalidValue"),
    ],
    ids=["no-username", "empty-username", "bad-active", "number-username"],
)
def test_invalid_users_are_400(scim, body, scim_type) -> None:
    assert_scim_error(scim.post("/Users", json=body), 400, scim_type)


def test_bad_json_is_invalid_syntax(scim) -> None:
    assert_scim_error(scim.post("/Users", content=b"{nope"), 400, "invalidSyntax")
    assert_scim_error(scim.post("/Users", content=b"[1, 2]"), 400, "invalidSyntax")


def test_plain_application_json_is_accepted(scim) -> None:
    answer = scim.post("/Users", json=user_body(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 201


def test_patch_user_attributes(scim) -> None:
    user = create_user(scim)
    answer = patch(
        scim,
        f"/Users/{user['id']}",
        {"op": "replace", "path": "name.givenName", "value": "Augusta"},
        {"op": "add", "path": "phoneNumbers", "value": [{"value": "555", "type": "work"}]},
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Math"},
        {"op": "remove", "path": "name.familyName"},
    )
    assert answer.status_code == 200, answer.text
    patched = answer.json()
    assert patched["name"] == {"givenName": "Augusta"}
    assert patched["phoneNumbers"] == [{"value": "555", "type": "work"}]
    assert patched[ENTERPRISE] == {"department": "Math"}
    assert scim.get(f"/Users/{user['id']}").json() == patched


def test_failed_patch_changes_nothing(scim) -> None:
    user = create_user(scim)
    answer = patch(
        scim,
        f"/Users/{user['id']}",
        {"op": "replace", "path": "displayName", "value": "changed"},
        {"op": "replace", "path": "active", "value": "sometimes"},
    )
    assert_scim_error(answer, 400, "invalidValue")
    assert "displayName" not in scim.get(f"/Users/{user['id']}").json()


@pytest.mark.parametrize(
    "ops",
    [
        [],
        [{"op": "move", "path": "x", "value": 1}],
        [{"op": "remove"}],
        [{"op": "replace", "path": "emails[type eq", "value": 1}],
    ],
    ids=["empty", "unknown-op", "remove-without-path", "bad-path"],
)
def test_invalid_patches_are_400(scim, ops) -> None:
    user = create_user(scim)
    answer = patch(scim, f"/Users/{user['id']}", *ops)
    assert answer.status_code == 400, answer.text
    assert answer.json()["scimType"] in ("invalidSyntax", "noTarget", "invalidPath")


# --- filters (RFC 7644 §3.4.2.2) --------------------------------------------------------


@pytest.fixture
def people(scim) -> dict[str, dict]:
    tag = unique("f").lower()
    made = {
        "alice": create_user(scim, f"alice.{tag}@example.com", externalId=f"ext-a-{tag}"),
        "bob": create_user(scim, f"bob.{tag}@example.org", externalId=f"ext-b-{tag}"),
        "carol": create_user(scim, f"carol.{tag}@example.com", active=False, displayName="C"),
    }
    made["tag"] = {"value": tag}
    return made


def _names(scim: httpx.Client, expression: str) -> set[str]:
    answer = scim.get("/Users", params={"filter": expression})
    assert answer.status_code == 200, answer.text
    return {r["userName"].split(".")[0] for r in answer.json()["Resources"]}


def test_filters(scim, people) -> None:
    tag = people["tag"]["value"]
    mine = f'userName co "{tag}"'
    assert _names(scim, f'userName eq "ALICE.{tag}@EXAMPLE.COM"') == {"alice"}
    assert _names(scim, f'userName sw "bob.{tag}"') == {"bob"}
    assert _names(scim, f'{mine} and userName ew ".org"') == {"bob"}
    assert _names(scim, f'{mine} and userName ne "bob.{tag}@example.org"') == {"alice", "carol"}
    assert _names(scim, f'externalId eq "ext-a-{tag}" or externalId eq "ext-b-{tag}"') == {
        "alice",
        "bob",
    }
    assert _names(scim, f"{mine} and active eq false") == {"carol"}
    assert _names(scim, f"{mine} and not (active eq false)") == {"alice", "bob"}
    assert _names(scim, f"{mine} and displayName pr") == {"carol"}
    assert _names(scim, f'emails.value eq "carol.{tag}@example.com"') == {"carol"}
    assert _names(scim, f'emails[value eq "bob.{tag}@example.org"]') == {"bob"}
    assert _names(scim, f'id eq "{people["alice"]["id"]}"') == {"alice"}
    assert _names(
        scim, f'urn:ietf:params:scim:schemas:core:2.0:User:userName sw "alice.{tag}"'
    ) == {"alice"}
    created = people["bob"]["meta"]["created"]
    assert _names(scim, f'{mine} and meta.lastModified ge "{created}"') >= {"bob", "carol"}
    assert _names(scim, f'{mine} and meta.created lt "2000-01-01T00:00:00Z"') == set()


def test_plus_encoded_spaces_in_filters(scim, people) -> None:
    tag = people["tag"]["value"]
    raw = f"/Users?filter=userName+eq+%22alice.{tag}%40example.com%22"
    answer = scim.get(raw)
    assert answer.status_code == 200
    assert answer.json()["totalResults"] == 1


def test_filter_values_are_bound_not_interpolated(scim, people) -> None:
    answer = scim.get("/Users", params={"filter": "userName eq \"x' OR '1'='1\""})
    assert answer.status_code == 200
    assert answer.json()["totalResults"] == 0
    percent = scim.get("/Users", params={"filter": 'userName co "%"'}).json()
    assert percent["totalResults"] == 0  # % is a character, not a wildcard


@pytest.mark.parametrize(
    "expression",
    [
        "userName eq",
        'nickName eq "x"',
        'userName zz "x"',
        'meta.lastModified gt "yesterday"',
        'active gt "true"',
        "((",
        'urn:example:ext:1.0:User:badge eq "1"',
    ],
)
def test_invalid_filters_are_400(scim, expression) -> None:
    assert_scim_error(scim.get("/Users", params={"filter": expression}), 400, "invalidFilter")


# --- paging and projection (RFC 7644 §3.4.2.4, §3.4.2.5) ---------------------------------


def test_paging(scim, people) -> None:
    tag = people["tag"]["value"]
    mine = f'userName co "{tag}"'
    first = scim.get("/Users", params={"filter": mine, "count": 2}).json()
    assert (first["totalResults"], first["startIndex"], first["itemsPerPage"]) == (3, 1, 2)
    second = scim.get("/Users", params={"filter": mine, "count": 2, "startIndex": 3}).json()
    assert (second["startIndex"], second["itemsPerPage"]) == (3, 1)
    ids = [r["id"] for r in first["Resources"] + second["Resources"]]
    assert ids == sorted(ids) and len(set(ids)) == 3  # stable order, no overlap
    none = scim.get("/Users", params={"filter": mine, "count": 0}).json()
    assert (none["totalResults"], none["itemsPerPage"], none["Resources"]) == (3, 0, [])
    clamped = scim.get("/Users", params={"filter": mine, "startIndex": -5}).json()
    assert clamped["startIndex"] == 1
    assert_scim_error(scim.get("/Users", params={"count": "ten"}), 400, "invalidValue")
    default = scim.get("/Users").json()
    assert default["itemsPerPage"] <= 100
    capped = scim.get("/Users", params={"count": 100000}).json()
    assert capped["itemsPerPage"] <= 500


def test_attributes_and_excluded_attributes(scim) -> None:
    user = create_user(scim, title="Boss")
    only = scim.get(f"/Users/{user['id']}", params={"attributes": "userName,name.givenName"})
    assert set(only.json()) == {"schemas", "id", "userName", "name"}
    without = scim.get(f"/Users/{user['id']}", params={"excludedAttributes": "emails,title"})
    assert "emails" not in without.json() and "title" not in without.json()
    assert without.json()["userName"] == user["userName"]


def test_whole_extension_removed_by_its_urn(scim) -> None:
    user = create_user(scim, **{ENTERPRISE: {"department": "R&D"}})
    answer = patch(scim, f"/Users/{user['id']}", {"op": "remove", "path": ENTERPRISE})
    assert answer.status_code == 200
    assert ENTERPRISE not in answer.json()
    assert answer.json()["schemas"] == [USER_SCHEMA]


def test_active_is_shown_as_sent(scim) -> None:
    bare = scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": unique("bare")})
    assert "active" not in bare.json()  # optional (RFC 7643 §4.1.1); treated as active
    user = create_user(scim)
    removed = patch(scim, f"/Users/{user['id']}", {"op": "remove", "path": "active"})
    assert "active" not in removed.json()


def test_unknown_endpoints_and_methods(scim) -> None:
    assert_scim_error(scim.get("/Nope"), 404)
    assert_scim_error(scim.post("/Bulk", json={}), 404)
    assert_scim_error(scim.get("/.search"), 405)
    assert_scim_error(scim.delete("/ServiceProviderConfig"), 405)
    assert_scim_error(scim.post("/Schemas", json={}), 405)
    assert_scim_error(scim.post("/Users", content=b""), 400, "invalidSyntax")
