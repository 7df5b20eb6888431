"""Issue 4 point 9: POST ``.search`` (RFC 7644 §3.4.3) on /Users, /Groups and the root.

A search answers what the GET with the same parameters answers; at the root, Users then
Groups are paged as one list.
"""

from __future__ import annotations

from typing import Any

import httpx
from dsync_helpers import assert_scim_error, create_group, create_user

from conftest import unique

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def search(scim: httpx.Client, path: str, **params: Any) -> httpx.Response:
    return scim.post(path, json={"schemas": [SEARCH], **params})


def _ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [r["id"] for r in answer.json()["Resources"]]


def test_users_search_answers_as_the_get_query(scim) -> None:
    tag = unique("s").lower()
    made = [create_user(scim, f"{name}.{tag}@example.com") for name in ("ann", "ben", "cy")]
    create_user(scim)  # not matched by the filter
    flt = f'userName co "{tag}"'
    got = search(scim, "/Users/.search", filter=flt, startIndex=2, count=1, attributes=["userName"])
    query = {"filter": flt, "startIndex": "2", "count": "1", "attributes": "userName"}
    assert got.json() == scim.get("/Users", params=query).json()
    body = got.json()
    assert body["totalResults"] == 3
    assert body["startIndex"] == 2
    assert [r["id"] for r in body["Resources"]] == [made[1]["id"]]
    assert set(body["Resources"][0]) == {"schemas", "id", "userName"}

    excluded = search(scim, "/Users/.search", filter=flt, excludedAttributes=["emails", "meta"])
    assert _ids(excluded) == [u["id"] for u in made]
    assert all("emails" not in r and "meta" not in r for r in excluded.json()["Resources"])


def test_groups_search_filters_members_and_projection(scim) -> None:
    alice = create_user(scim)
    with_alice = create_group(scim, unique("Eng"), [alice["id"]])
    create_group(scim, unique("Ops"))
    answer = search(
        scim,
        "/Groups/.search",
        filter=f'members[value eq "{alice["id"]}"]',
        excludedAttributes=["members"],
    )
    assert _ids(answer) == [with_alice["id"]]
    assert "members" not in answer.json()["Resources"][0]
    full = search(scim, "/Groups/.search", filter=f'id eq "{with_alice["id"]}"')
    assert [m["value"] for m in full.json()["Resources"][0]["members"]] == [alice["id"]]


def test_root_search_pages_users_then_groups(scim) -> None:
    users = [create_user(scim)["id"] for _ in range(3)]
    groups = [create_group(scim)["id"] for _ in range(2)]
    everything = search(scim, "/.search")
    assert _ids(everything) == users + groups
    assert everything.json()["totalResults"] == 5
    # A page that straddles the two resource types.
    page = search(scim, "/.search", startIndex=3, count=2, attributes=["meta"])
    assert _ids(page) == [users[2], groups[0]]
    assert page.json()["totalResults"] == 5
    assert [r["meta"]["resourceType"] for r in page.json()["Resources"]] == ["User", "Group"]
    assert _ids(search(scim, "/.search", startIndex=5)) == [groups[1]]
    assert _ids(search(scim, "/.search", startIndex=9)) == []
    assert search(scim, "/.search", count=0).json()["totalResults"] == 5


def test_root_search_filter_selects_the_types_that_have_its_attributes(scim) -> None:
    user = create_user(scim)
    group = create_group(scim, members=[user["id"]])
    # displayName and id exist on both types; userName only on Users; members only on Groups.
    assert _ids(search(scim, "/.search", filter=f'id eq "{group["id"]}"')) == [group["id"]]
    assert _ids(search(scim, "/.search", filter=f'userName eq "{user["userName"]}"')) == [
        user["id"]
    ]
    members = f'members[value eq "{user["id"]}"]'
    assert _ids(search(scim, "/.search", filter=members)) == [group["id"]]
    assert_scim_error(search(scim, "/.search", filter="title eq 1"), 400, "invalidFilter")
    assert_scim_error(search(scim, "/.search", filter="userName eq"), 400, "invalidFilter")


def test_search_parameters_are_validated(scim) -> None:
    assert_scim_error(search(scim, "/Users/.search", count="10"), 400, "invalidValue")
    assert_scim_error(search(scim, "/Users/.search", startIndex=True), 400, "invalidValue")
    assert_scim_error(search(scim, "/Groups/.search", filter=["x"]), 400, "invalidSyntax")
    assert_scim_error(search(scim, "/Users/.search", attributes=[1]), 400, "invalidSyntax")
    assert_scim_error(scim.post("/Users/.search", content=b"[]"), 400, "invalidSyntax")


def test_search_defaults_and_ignored_sorting(scim) -> None:
    made = [create_user(scim)["id"] for _ in range(2)]
    # An empty body is every resource, first page; sortBy is ignored (sort.supported false).
    assert _ids(scim.post("/Users/.search", content=b"")) == made
    assert _ids(search(scim, "/Users/.search", sortBy="userName", sortOrder="descending")) == made
    # attributes may also come comma-separated, as in the URL form.
    answer = search(scim, "/Users/.search", attributes="userName,active")
    assert set(answer.json()["Resources"][0]) == {"schemas", "id", "userName", "active"}
