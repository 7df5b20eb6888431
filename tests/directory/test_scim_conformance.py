"""The SCIM response check every SCIM test client runs (``scim_conformance``) catches
invalid responses: it is only worth something if it fails on them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from scim_conformance import check_response

from conftest import unique

BASE = "http://127.0.0.1/scim/v2/directory_01"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def answer(
    method: str,
    path: str,
    status: int,
    body: Any = None,
    sent: Any = None,
    content_type: str = "application/scim+json",
) -> httpx.Response:
    request = httpx.Request(method, BASE + path, json=sent)
    content = b"" if body is None else httpx.Response(200, json=body).content
    return httpx.Response(
        status, content=content, headers={"content-type": content_type}, request=request
    )


def user(**extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "id": "directory_user_1",
        "userName": "ada@example.com",
        "emails": [{"value": "ada@okta.local", "primary": True}],
        "meta": {"resourceType": "User", "location": f"{BASE}/Users/directory_user_1"},
        **extra,
    }


def test_valid_responses_pass() -> None:
    check_response(answer("GET", "/Users/directory_user_1", 200, user()))
    listed = {"schemas": [LIST], "totalResults": 1, "itemsPerPage": 1, "startIndex": 1}
    check_response(answer("GET", "/Users", 200, {**listed, "Resources": [user()]}))
    check_response(answer("DELETE", "/Users/directory_user_1", 204))
    error = {"schemas": [ERROR], "status": "404", "detail": "not found"}
    check_response(answer("GET", "/Users/x", 404, error))


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/Users/directory_user_1", 200, {k: v for k, v in user().items() if k != "id"}),
        ("POST", "/Users", 201, user(password="secret")),  # returned "never"
        ("GET", "/Users/directory_user_1", 200, user(emails="ada@example.com")),
        ("GET", "/Users/directory_user_1", 200, user(schemas=["urn:example:Other"])),
        ("GET", "/Users", 200, {"schemas": [LIST], "Resources": [user(active="maybe")]}),
        ("GET", "/Users/x", 404, {"schemas": [ERROR], "status": "400"}),  # status mismatch
        ("GET", "/Users/x", 404, {"detail": "not found", "status": "404"}),  # no schemas
    ],
)
def test_invalid_responses_fail(method: str, path: str, status: int, body: Any) -> None:
    with pytest.raises(AssertionError):
        check_response(answer(method, path, status, body))


def test_media_type_and_empty_bodies_are_checked() -> None:
    with pytest.raises(AssertionError):
        check_response(answer("GET", "/Users/directory_user_1", 200, user(), content_type="a/b"))
    with pytest.raises(AssertionError):
        check_response(answer("DELETE", "/Users/directory_user_1", 204, {"x": 1}))


def test_unknown_attributes_pass_only_where_a_test_sent_them() -> None:
    name = unique("xAttr").replace("-", "")
    made_up = answer("GET", "/Users/directory_user_1", 200, user(**{name: 1}))
    with pytest.raises(AssertionError):
        check_response(made_up)
    check_response(answer("POST", "/Users", 201, user(**{name: 1}), sent={name: 1}))
    check_response(made_up)  # now a test has sent it: kept as the IdP sent it
    misplaced = user(name={"givenName": "Ada", name: 1})
    with pytest.raises(AssertionError):
        check_response(answer("GET", "/Users/directory_user_1", 200, misplaced))


def test_unknown_attributes_sent_by_patch_paths_pass() -> None:
    urn = f"urn:example:{unique('ext').replace('-', '')}:1.0:User"
    ops = {"Operations": [{"op": "add", "path": f"{urn}:badge", "value": 7}]}
    patched = user(schemas=[USER, urn], **{urn: {"badge": 7}})
    check_response(answer("PATCH", "/Users/directory_user_1", 200, patched, sent=ops))
