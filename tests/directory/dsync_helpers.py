"""Helpers for Directory Sync tests: organizations, directories, SCIM clients and requests."""

from __future__ import annotations

from typing import Any

import httpx
from scim_conformance import check_response

from conftest import API_KEY, unique
from conftest import make_org as make_org_in
from idp_sync.directory import mirror, services
from idp_sync.rbac.services import create_environment_role

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def make_org(api: httpx.Client) -> dict[str, Any]:
    answer = api.post("/organizations", json={"name": unique("Acme")})
    assert answer.status_code == 201, answer.text
    return answer.json()


def make_directory(
    api: httpx.Client, directory_type: str = "generic scim v2.0", org_id: str | None = None
) -> dict[str, Any]:
    org_id = org_id or make_org(api)["id"]
    answer = api.post(
        "/directories",
        json={"organization_id": org_id, "name": unique("dir"), "type": directory_type},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def scim_client(directory: dict[str, Any]) -> httpx.Client:
    """A client of the directory's SCIM server; every response it gets is checked against
    the SCIM schemas (``scim_conformance``), so an invalid one fails the test."""
    return httpx.Client(
        base_url=directory["scim"]["base_url"],
        headers={
            "Authorization": f"Bearer {directory['scim']['bearer_token']}",
            "Content-Type": SCIM_JSON,
        },
        timeout=30,
        event_hooks={"response": [check_response]},
    )


def user_body(user_name: str | None = None, **extra: Any) -> dict[str, Any]:
    name = user_name or f"{unique('user')}@example.com"
    return {
        "schemas": [USER_SCHEMA],
        "userName": name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": name, "type": "work"}],
        "active": True,
        **extra,
    }


def create_user(scim: httpx.Client, user_name: str | None = None, **extra: Any) -> dict[str, Any]:
    answer = scim.post("/Users", json=user_body(user_name, **extra))
    assert answer.status_code == 201, answer.text
    return answer.json()


def create_group(scim: httpx.Client, name: str | None = None, members: list[str] = ()) -> dict:  # type: ignore[assignment]
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": name or unique("group"),
        "members": [{"value": m} for m in members],
    }
    answer = scim.post("/Groups", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def patch(scim: httpx.Client, path: str, *ops: dict[str, Any], **params: str) -> httpx.Response:
    body = {"schemas": [PATCH_SCHEMA], "Operations": list(ops)}
    return scim.patch(path, json=body, params=params or None)


def assert_scim_error(answer: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body["scimType"] == scim_type


def mapped_directory(session):  # type: ignore[no-untyped-def]
    """Service level, in ``session``: an organization with an Okta directory whose one
    group is mapped to a new environment role. Returns (org, directory, group, role)."""
    org = make_org_in(session)
    directory, _ = services.create_directory(
        session, organization_id=org.id, name="d", directory_type="okta scim v2.0"
    )
    role = create_environment_role(session, slug=unique("eng"), name="Eng", description=None)
    group = mirror.create_group(session, directory, {"displayName": unique("Eng")})
    services.create_mapping(session, directory, group=group.id, role_slug=role.slug, actor="t")
    return org, directory, group, role


def sequence_events(engine) -> None:  # type: ignore[no-untyped-def]
    """Run the sequencer once, as the worker does after a commit: it writes the member
    events an event-loop PATCH reserved (``directory.member_events``), then positions
    every event."""
    from sqlalchemy.orm import Session

    from idp_sync.events.sequencer import assign_sequence

    with Session(engine) as session, session.begin():
        assign_sequence(session)


def member_events(engine, group_id: str) -> list[tuple[str, str, int | None, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """(id, name, position, data) of the ``dsync.group.user_*`` events about a group that
    are written, in id order (``sequence_events`` writes the reserved ones)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, event, seq, data FROM events WHERE event LIKE 'dsync.group.user_%' "
                "AND data -> 'group' ->> 'id' = :g ORDER BY id"
            ),
            {"g": group_id},
        ).all()
    return [(r.id, r.event, r.seq, r.data) for r in rows]
