"""Issue 4 point 1: directories, their SCIM bearer tokens, and tenant isolation."""

from __future__ import annotations

import hashlib

import httpx
import pytest
import sqlalchemy as sa
from dsync_helpers import assert_scim_error, create_user, make_directory, make_org, scim_client
from workos._errors import NotFoundError

from conftest import unique

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim


def test_create_directory_returns_workos_shape_and_token_once(api, live) -> None:
    org = make_org(api)
    created = make_directory(api, "okta scim v2.0", org["id"])
    assert created["object"] == "directory"
    assert created["id"].startswith("directory_")
    assert created["organization_id"] == org["id"]
    assert created["type"] == "okta scim v2.0"
    assert created["state"] == "linked"
    assert created["domain"] is None
    assert created["created_at"].endswith("Z")
    assert created["metadata"] == {"users": {"active": 0, "inactive": 0}, "groups": 0}
    token = created["scim"]["bearer_token"]
    assert created["scim"]["base_url"] == f"{live.url}/scim/v2/{created['id']}"
    assert len(token) >= 43  # 32 random bytes, base64url
    fetched = api.get(f"/directories/{created['id']}").json()
    assert "scim" not in fetched
    assert token not in str(fetched)


def test_token_is_stored_hashed(api, engine) -> None:
    created = make_directory(api)
    token = created["scim"]["bearer_token"]
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT token_hash FROM directories WHERE id = :id"), {"id": created["id"]}
        ).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored


def test_unknown_type_and_organization_are_refused(api) -> None:
    org = make_org(api)
    bad_type = api.post(
        "/directories", json={"organization_id": org["id"], "name": "x", "type": "ldap"}
    )
    assert bad_type.status_code == 422
    no_org = api.post("/directories", json={"organization_id": "org_missing", "name": "x"})
    assert no_org.status_code == 404


def test_sdk_lists_gets_and_deletes_directories(api, sdk) -> None:
    org = make_org(api)
    first = make_directory(api, org_id=org["id"])
    second = make_directory(api, "azure scim v2.0", org["id"])
    listed = sdk.directory_sync.list_directories(organization_id=org["id"])
    assert [d.id for d in listed.data] == [second["id"], first["id"]]  # newest first
    fetched = sdk.directory_sync.get_directory(first["id"])
    assert fetched.organization_id == org["id"]
    assert fetched.type == "generic scim v2.0"
    assert fetched.metadata.users.active == 0
    sdk.directory_sync.delete_directory(first["id"])
    with pytest.raises(NotFoundError):
        sdk.directory_sync.get_directory(first["id"])
    with scim_client(first) as gone:
        assert gone.get("/Users").status_code == 401  # its token died with it


def test_rotation_replaces_the_token(api, directory) -> None:
    with scim_client(directory) as old:
        assert old.get("/Users").status_code == 200
        rotated = api.post(f"/directories/{directory['id']}/scim_token")
        assert rotated.status_code == 201, rotated.text
        new_token = rotated.json()["scim"]["bearer_token"]
        assert new_token != directory["scim"]["bearer_token"]
        assert_scim_error(old.get("/Users"), 401)
    with scim_client(rotated.json()) as new:
        assert new.get("/Users").status_code == 200


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", "Basic abc", "Bearer"], ids=["none", "wrong", "basic", "empty"]
)
def test_missing_or_wrong_token_is_401(directory, header) -> None:
    headers = {"Authorization": header} if header else {}
    answer = httpx.get(f"{directory['scim']['base_url']}/Users", headers=headers)
    assert_scim_error(answer, 401)
    assert answer.headers["content-type"].startswith("application/scim+json")


def test_a_token_reaches_only_its_own_directory(api, directory, scim) -> None:
    other = make_directory(api)
    with scim_client(other) as other_scim:
        theirs = create_user(other_scim)
    # A's token on B's URL: 404, as an unknown directory.
    answer = scim.get(other["scim"]["base_url"] + "/Users")
    assert_scim_error(answer, 404)
    # B's user id through A's endpoint: 404.
    assert_scim_error(scim.get(f"/Users/{theirs['id']}"), 404)
    assert_scim_error(scim.delete(f"/Users/{theirs['id']}"), 404)
    listed = scim.get("/Users", params={"filter": f'id eq "{theirs["id"]}"'}).json()
    assert listed["totalResults"] == 0


def test_tokens_are_never_kept_for_idempotent_replay(api, engine) -> None:
    """The idempotency store keeps answers in clear: token-issuing POSTs stay out of it."""
    org = make_org(api)
    body = {"organization_id": org["id"], "name": "idem", "type": "generic scim v2.0"}
    headers = {"Idempotency-Key": unique("idem")}
    first = api.post("/directories", json=body, headers=headers).json()
    rotated = api.post(f"/directories/{first['id']}/scim_token", headers=headers).json()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT CAST(body AS TEXT) FROM idempotency_records"))
        bodies = " ".join(row[0] for row in stored)
    assert first["scim"]["bearer_token"] not in bodies
    assert rotated["scim"]["bearer_token"] not in bodies
