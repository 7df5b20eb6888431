"""The HTTP contract under the SDK, checked with plain httpx (DESIGN §5): WorkOS error
bodies with 400/401/404/409/422 and never a 500 for what a client sends, ``Idempotency-Key``
on POST, ``Z`` datetimes and nullable fields present as ``null``."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import API_KEY, unique

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
Z_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@pytest.fixture
def client(live):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live.url, headers=HEADERS, timeout=10) as c:
        yield c


def _is_error_body(body: object) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("code"), str)
        and isinstance(body.get("message"), str)
    )


# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk_test_wrong"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong-key", "wrong-scheme", "empty"],
)
def test_missing_or_invalid_api_key_is_401(live, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/organizations"), ("POST", "/authorization/permissions")):
        answer = httpx.request(
            method, f"{live.url}{path}", headers=headers, json={"slug": unique("x"), "name": "X"}
        )
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        assert _is_error_body(answer.json())


def test_refused_request_acts_not(live, client) -> None:
    slug = unique("unauth")
    answer = httpx.post(
        f"{live.url}/authorization/permissions",
        json={"slug": slug, "name": "X"},
        headers={"Authorization": "Bearer sk_test_wrong"},
    )
    assert answer.status_code == 401
    assert client.get(f"/authorization/permissions/{slug}").status_code == 404


# --- errors ---------------------------------------------------------------------------


def test_unknown_route_is_404_json(client) -> None:
    answer = client.get("/no/such/route")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/json")
    assert _is_error_body(answer.json())


def test_unknown_object_is_404_json(client) -> None:
    answer = client.get("/organizations/org_01DOESNOTEXIST")
    assert answer.status_code == 404
    body = answer.json()
    assert _is_error_body(body)
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/authorization/permissions", {"slug": 123, "name": ["x"]}),
        ("/authorization/permissions", {"name": "no slug"}),
        ("/authorization/roles", {"slug": {"a": 1}, "name": "X"}),
        ("/organizations", {"name": "X", "domains": "not-a-list"}),
        ("/user_management/users", {"email": 42}),
        ("/user_management/organization_memberships", {"user_id": None, "organization_id": 1}),
    ],
)
def test_invalid_body_types_are_422_with_errors(client, path: str, body: dict) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    payload = answer.json()
    assert _is_error_body(payload)
    assert isinstance(payload["errors"], list) and payload["errors"]


def test_body_that_is_not_an_object_is_422(client) -> None:
    answer = client.post("/authorization/permissions", json=["slug", "name"])
    assert answer.status_code == 422, answer.text
    assert _is_error_body(answer.json())


@pytest.mark.parametrize("raw", [b"{not json", b'{"slug": "a",}', b"{", b"\xff\xfe\x00"])
def test_malformed_json_is_400(client, raw: bytes) -> None:
    answer = client.post(
        "/authorization/permissions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert _is_error_body(answer.json())


def test_empty_json_body_is_refused_without_a_500(client) -> None:
    answer = client.post(
        "/authorization/permissions", content=b"", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code in (400, 422), answer.text
    assert _is_error_body(answer.json())


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc"])
@pytest.mark.parametrize(
    "path",
    ["/authorization/permissions", "/organizations", "/user_management/users", "/events"],
)
def test_limit_out_of_range_is_422(client, path: str, limit: str) -> None:
    answer = client.get(path, params={"limit": limit})
    assert answer.status_code == 422, answer.text
    assert _is_error_body(answer.json())


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limit_bounds_are_accepted(client, limit: str) -> None:
    answer = client.get("/authorization/permissions", params={"limit": limit})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list"
    assert len(body["data"]) <= int(limit)
    assert set(body["list_metadata"]) == {"before", "after"}


def test_invalid_order_is_422(client) -> None:
    answer = client.get("/organizations", params={"order": "sideways"})
    assert answer.status_code == 422
    assert _is_error_body(answer.json())


ODD_REQUESTS = [
    ("bad-range-start", "GET", "/events", {"params": {"range_start": "yesterday"}}),
    (
        "bad-status",
        "GET",
        "/user_management/organization_memberships",
        {"params": {"statuses": "bogus", "user_id": "user_x"}},
    ),
    (
        "role-slug-int",
        "PUT",
        "/user_management/organization_memberships/om_nope",
        {"json": {"role_slug": 5}},
    ),
    ("long-slug", "PATCH", "/authorization/permissions/" + "x" * 300, {"json": {"name": "x"}}),
    ("no-permission-slug", "POST", "/authorization/roles/member/permissions", {"json": {}}),
    (
        "permissions-not-list",
        "PUT",
        "/authorization/roles/member/permissions",
        {"json": {"permissions": "a"}},
    ),
    ("long-org-name", "POST", "/organizations", {"json": {"name": "x" * 10_000}}),
    (
        "long-email",
        "POST",
        "/user_management/users",
        {"json": {"email": "a@" + "b" * 400 + ".com"}},
    ),
    ("huge-limit", "GET", "/organizations", {"params": {"limit": "99999999999999999999999"}}),
    (
        "nested-metadata",
        "POST",
        "/organizations",
        {"json": {"name": "x", "metadata": {"a": {"b": 1}}}},
    ),
    ("domain-no-dot", "POST", "/organizations", {"json": {"name": "x", "domains": ["nodot"]}}),
    (
        "domain-bad-state",
        "POST",
        "/organizations",
        {"json": {"name": "x", "domain_data": [{"domain": "a.io", "state": "odd"}]}},
    ),
    ("update-unknown-org", "PUT", "/organizations/org_nope", {"json": {"name": "x"}}),
    (
        "role-unknown-org",
        "POST",
        "/authorization/organizations/org_nope/roles",
        {"json": {"name": "x"}},
    ),
    ("roles-unknown-org", "GET", "/authorization/organizations/org_nope/roles", {}),
    (
        "unknown-default-role",
        "PUT",
        "/authorization/settings",
        {"json": {"default_role_slug": "no-such-role"}},
    ),
    (
        "duplicate-priority",
        "PUT",
        "/authorization/settings",
        {"json": {"priority_order": ["member", "member"]}},
    ),
    (
        "membership-unknowns",
        "POST",
        "/user_management/organization_memberships",
        {"json": {"user_id": "user_nope", "organization_id": "org_nope"}},
    ),
    (
        "deactivate-unknown",
        "PUT",
        "/user_management/organization_memberships/om_nope/deactivate",
        {},
    ),
    ("events-bad-order", "GET", "/events", {"params": {"order": "sideways"}}),
    (
        "events-both-cursors",
        "GET",
        "/events",
        {"params": {"after": "event_x", "before": "event_y"}},
    ),
    # Longer than the columns that store them.
    (
        "long-domain",
        "POST",
        "/organizations",
        {"json": {"name": "x", "domains": ["d" * 300 + ".com"]}},
    ),
    # PostgreSQL refuses NUL in text: a NUL sent by a client must be a 4xx, not a 500.
    ("nul-in-path", "DELETE", "/organizations/%00", {}),
    ("nul-in-cursor", "GET", "/organizations", {"params": {"after": "\x00"}}),
    ("nul-in-body", "POST", "/organizations", {"json": {"name": "a\u0000b"}}),
    ("nul-in-filter", "GET", "/user_management/users", {"params": {"email": "a\x00@b.com"}}),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [pytest.param(*case[1:], id=case[0]) for case in ODD_REQUESTS],
)
def test_odd_requests_never_produce_a_500(client, method: str, path: str, kwargs: dict) -> None:
    answer = client.request(method, path, **kwargs)
    assert answer.status_code in (400, 404, 409, 422), answer.text
    assert _is_error_body(answer.json())


def test_values_longer_than_their_columns_are_422_not_500(client) -> None:
    org = client.post("/organizations", json={"name": unique("Long")}).json()
    user = client.post(
        "/user_management/users", json={"email": f"{unique('long')}@example.com"}
    ).json()
    for method, path, body in (
        ("PUT", f"/organizations/{org['id']}", {"stripe_customer_id": "s" * 300}),
        ("PUT", f"/organizations/{org['id']}", {"domains": ["d" * 300 + ".com"]}),
        ("PUT", f"/organizations/{org['id']}", {"external_id": "e" * 300}),
        ("PUT", f"/user_management/users/{user['id']}", {"locale": "l" * 100}),
        ("PUT", f"/user_management/users/{user['id']}", {"first_name": "f" * 300}),
    ):
        answer = client.request(method, path, json=body)
        assert answer.status_code == 422, (path, body, answer.text)
        assert _is_error_body(answer.json())
    assert client.get(f"/organizations/{org['id']}").json()["stripe_customer_id"] is None
    assert client.get(f"/user_management/users/{user['id']}").json()["locale"] is None


# --- Idempotency-Key ------------------------------------------------------------------


def _events_for(client, name: str, slug: str) -> list[dict]:
    found: list[dict] = []
    after = None
    while True:
        params = {"events": name, "limit": 100, **({"after": after} if after else {})}
        page = client.get("/events", params=params).json()
        found += [e for e in page["data"] if e["data"].get("slug") == slug]
        if not page["data"]:
            return found
        after = page["list_metadata"]["after"]


def test_same_idempotency_key_returns_the_first_answer_and_acts_once(client) -> None:
    slug = unique("idem")
    key = str(uuid.uuid4())
    body = {"slug": slug, "name": "Idempotent"}
    first = client.post("/authorization/permissions", json=body, headers={"Idempotency-Key": key})
    second = client.post("/authorization/permissions", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert second.status_code == first.status_code
    assert second.json()["id"] == first.json()["id"]
    assert second.json() == first.json()
    listed = client.get("/authorization/permissions", params={"limit": 100}).json()["data"]
    assert [p["id"] for p in listed if p["slug"] == slug] == [first.json()["id"]]
    assert len(_events_for(client, "permission.created", slug)) == 1


def test_concurrent_posts_with_one_idempotency_key_act_once(live) -> None:
    """An SDK retrying while its first attempt is still in flight: every attempt gets the
    first answer (201 and the same object), never a 409 from its own first attempt.

    The race is timing-dependent, so it is tried for several rounds."""

    def post(slug: str, key: str) -> httpx.Response:
        return httpx.post(
            f"{live.url}/authorization/permissions",
            json={"slug": slug, "name": "Race"},
            headers={**HEADERS, "Idempotency-Key": key},
            timeout=10,
        )

    with (
        ThreadPoolExecutor(max_workers=8) as pool,
        httpx.Client(base_url=live.url, headers=HEADERS) as client,
    ):
        for _ in range(12):
            slug, key = unique("idem-race"), str(uuid.uuid4())
            answers = list(pool.map(lambda _: post(slug, key), range(8)))
            assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
            assert len({a.json()["id"] for a in answers}) == 1
            assert len(_events_for(client, "permission.created", slug)) == 1


def test_same_idempotency_key_with_a_different_body_is_422(client) -> None:
    key = str(uuid.uuid4())
    first = client.post(
        "/authorization/permissions",
        json={"slug": unique("idem"), "name": "A"},
        headers={"Idempotency-Key": key},
    )
    assert first.status_code == 201
    other_slug = unique("idem")
    reused = client.post(
        "/authorization/permissions",
        json={"slug": other_slug, "name": "B"},
        headers={"Idempotency-Key": key},
    )
    assert reused.status_code == 422, reused.text
    assert reused.json()["code"] == "idempotency_key_reused"
    assert client.get(f"/authorization/permissions/{other_slug}").status_code == 404


def test_different_idempotency_keys_act_separately(client) -> None:
    body = {"name": unique("Org")}
    a = client.post("/organizations", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    b = client.post("/organizations", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_failed_request_is_not_remembered_under_its_key(client) -> None:
    key = str(uuid.uuid4())
    slug = unique("retry")
    client.post("/authorization/permissions", json={"slug": slug, "name": "First"})
    conflict = client.post(
        "/authorization/permissions",
        json={"slug": slug, "name": "First"},
        headers={"Idempotency-Key": key},
    )
    assert conflict.status_code == 409
    again = client.post(
        "/authorization/permissions",
        json={"slug": slug, "name": "First"},
        headers={"Idempotency-Key": key},
    )
    assert again.status_code == 409


# --- wire format ----------------------------------------------------------------------


def test_user_json_has_z_datetimes_and_explicit_nulls(client) -> None:
    created = client.post("/user_management/users", json={"email": f"{unique('raw')}@example.com"})
    assert created.status_code == 201, created.text
    for body in (
        created.json(),
        client.get(f"/user_management/users/{created.json()['id']}").json(),
    ):
        for field in (
            "first_name",
            "last_name",
            "profile_picture_url",
            "external_id",
            "last_sign_in_at",
        ):
            assert field in body and body[field] is None, field
        assert Z_DATETIME.match(body["created_at"]), body["created_at"]
        assert Z_DATETIME.match(body["updated_at"]), body["updated_at"]
        assert body["object"] == "user"
        assert body["email_verified"] is False


def test_role_json_has_z_datetimes_and_explicit_nulls(client) -> None:
    created = client.post("/authorization/roles", json={"slug": unique("raw"), "name": "Raw"})
    assert created.status_code == 201, created.text
    for body in (
        created.json(),
        client.get(f"/authorization/roles/{created.json()['slug']}").json(),
    ):
        assert "description" in body and body["description"] is None
        assert Z_DATETIME.match(body["created_at"]), body["created_at"]
        assert Z_DATETIME.match(body["updated_at"]), body["updated_at"]
        assert body["type"] == "EnvironmentRole"
        assert body["permissions"] == []


def test_membership_json_embeds_the_full_user(client) -> None:
    org = client.post("/organizations", json={"name": unique("Raw")}).json()
    user = client.post(
        "/user_management/users", json={"email": f"{unique('raw')}@example.com"}
    ).json()
    membership = client.post(
        "/user_management/organization_memberships",
        json={"user_id": user["id"], "organization_id": org["id"]},
    )
    assert membership.status_code == 201, membership.text
    body = membership.json()
    assert body["user"] == user | {"updated_at": body["user"]["updated_at"]}
    assert body["role"] == {"slug": "member"}
    assert body["roles"] == [{"slug": "member"}]
    assert body["directory_managed"] is False
    assert Z_DATETIME.match(body["created_at"])


def test_organization_json_has_explicit_nulls(client) -> None:
    body = client.post("/organizations", json={"name": unique("Raw")}).json()
    assert "external_id" in body and body["external_id"] is None
    assert body["domains"] == []
    assert body["metadata"] == {}
    assert Z_DATETIME.match(body["created_at"])


def test_list_metadata_cursors_are_present_as_null(client) -> None:
    body = client.get("/organizations", params={"search": unique("none")}).json()
    assert body == {"object": "list", "data": [], "list_metadata": {"before": None, "after": None}}
