"""The membership fast paths answer exactly what the ORM paths do.

* ``GET /user_management/organization_memberships/{id}`` is an ``async def`` endpoint on
  the runtime's async read pool, with the API key checked on the event loop: same body as
  the ORM serializer, same 401s, and a revoked key refused once the cache has expired.
* ``POST /user_management/organization_memberships`` is the lean create: same rules,
  same events, same ``Idempotency-Key`` semantics, including concurrent retries.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import API_KEY, make_settings, serve, unique
from idp_sync.db import utcnow
from idp_sync.memberships import serializers
from idp_sync.memberships.models import OrganizationMembership
from idp_sync.memberships.queries import membership_view, read_membership_view
from idp_sync.runtime import Runtime

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
BASE = "/user_management/organization_memberships"


@pytest.fixture
def client(live):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live.url, headers=HEADERS, timeout=10) as c:
        yield c


def _org(client: httpx.Client) -> dict:
    answer = client.post("/organizations", json={"name": unique("Fast Org")})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _user(client: httpx.Client) -> dict:
    body = {
        "email": f"{unique('fast')}@example.com",
        "first_name": "Fa",
        "last_name": "St",
        "metadata": {"team": "reads"},
    }
    answer = client.post("/user_management/users", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _org_role(client: httpx.Client, org_id: str) -> str:
    answer = client.post(
        f"/authorization/organizations/{org_id}/roles", json={"name": unique("Reader")}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["slug"])


def _expected(runtime: Runtime, membership_id: str, org_name: str) -> dict:
    with runtime.session() as session:
        membership = session.get(OrganizationMembership, membership_id)
        assert membership is not None
        expected = serializers.membership(membership, org_name)
        assert membership_view(session, membership_id) == expected
        return expected


def _events(client: httpx.Client, name: str, org_id: str) -> list[dict]:
    answer = client.get("/events", params={"events": name, "organization_id": org_id})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


# --- the async read path --------------------------------------------------------------


def test_get_membership_answers_as_the_orm_serializer(live, client) -> None:
    org = _org(client)
    user = _user(client)
    role = _org_role(client, org["id"])
    created = client.post(
        BASE, json={"user_id": user["id"], "organization_id": org["id"], "role_slug": role}
    )
    assert created.status_code == 201, created.text
    membership_id = created.json()["id"]

    got = client.get(f"{BASE}/{membership_id}")
    assert got.status_code == 200, got.text
    assert got.json() == _expected(live.runtime, membership_id, org["name"])
    assert got.json() == created.json()
    assert got.json()["role"] == {"slug": role}

    missing = client.get(f"{BASE}/om_missing")
    assert missing.status_code == 404
    assert missing.json()["code"] == "entity_not_found"


def test_the_reader_on_its_own_loops_matches_the_sync_view(live, client) -> None:
    """A runtime served on a second event loop gets a new pool (async connections belong
    to the loop that opened them)."""
    org = _org(client)
    user = _user(client)
    created = client.post(BASE, json={"user_id": user["id"], "organization_id": org["id"]})
    membership_id = created.json()["id"]
    runtime = Runtime(live.runtime.settings)

    async def read() -> tuple[object, object]:
        try:
            found = await read_membership_view(runtime.reader(), membership_id)
            missing = await read_membership_view(runtime.reader(), "om_missing")
            return found, missing
        finally:
            await runtime.close_reader()

    try:
        for _ in range(2):
            found, missing = asyncio.run(read())
            assert found == _expected(live.runtime, membership_id, org["name"])
            assert missing is None
    finally:
        runtime.dispose()


def test_the_reader_survives_connections_the_server_closed(live, client) -> None:
    """A database restart or an idle timeout closes pooled connections: the next read
    drops them and answers from a fresh connection instead of failing."""
    import sqlalchemy as sa

    from idp_sync.runtime import READ_POOL

    org = _org(client)
    user = _user(client)
    created = client.post(BASE, json={"user_id": user["id"], "organization_id": org["id"]})
    membership_id = created.json()["id"]
    runtime = Runtime(live.runtime.settings)
    kill = sa.text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = :name AND datname = current_database()"
    )

    async def read_kill_read() -> tuple[object, int, object]:
        try:
            reader = runtime.reader()
            # Several connections in the pool, so more than one is dead afterwards.
            before = await asyncio.gather(
                *(read_membership_view(reader, membership_id) for _ in range(4))
            )
            with runtime.engine.connect() as conn:
                killed = int(conn.execute(kill, {"name": READ_POOL}).scalar_one())
            after = await read_membership_view(reader, membership_id)
            return before[0], killed, after
        finally:
            await runtime.close_reader()

    try:
        before, killed, after = asyncio.run(read_kill_read())
        assert killed >= 1
        assert after == before == _expected(live.runtime, membership_id, org["name"])
        assert client.get(f"{BASE}/{membership_id}").json() == before  # the live server too
    finally:
        runtime.dispose()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk_test_wrong"}, {"Authorization": f"Basic {API_KEY}"}],
    ids=["missing", "wrong-key", "wrong-scheme"],
)
def test_get_membership_without_a_valid_key_is_401(live, headers: dict[str, str]) -> None:
    answer = httpx.get(f"{live.url}{BASE}/om_anything", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "unauthorized"


def test_a_revoked_key_is_refused_by_the_async_path(pg_url, redis_url, tmp_path) -> None:
    """With no cache, every check reaches the database through the async reader."""
    from idp_sync.auth.models import ApiKey
    from idp_sync.auth.services import create_api_key

    settings = make_settings(pg_url, redis_url, str(tmp_path), IDP_SYNC_API_KEY_CACHE_SECONDS=0.0)
    runtime = Runtime(settings)
    server = serve(runtime)
    try:
        with runtime.transaction() as session:
            key, raw = create_api_key(session, "revoke-me")
            key_id = key.id
        with httpx.Client(base_url=server.url, timeout=10) as http:
            ok = http.get(f"{BASE}/om_missing", headers={"Authorization": f"Bearer {raw}"})
            assert ok.status_code == 404, ok.text  # authenticated, then not found
            with runtime.transaction() as session:
                row = session.get(ApiKey, key_id)
                assert row is not None
                row.revoked_at = utcnow()
            refused = http.get(f"{BASE}/om_missing", headers={"Authorization": f"Bearer {raw}"})
            assert refused.status_code == 401, refused.text
    finally:
        server.stop()
        runtime.dispose()


# --- the lean create path -------------------------------------------------------------


def test_create_membership_answers_and_records_as_before(live, client) -> None:
    org = _org(client)
    user = _user(client)
    created = client.post(
        BASE,
        json={"user_id": user["id"], "organization_id": org["id"]},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body == _expected(live.runtime, body["id"], org["name"])
    assert body["role"] == {"slug": "member"} and body["roles"] == [{"slug": "member"}]
    assert body["user"] == user
    events = _events(client, "organization_membership.created", org["id"])
    assert [e["data"]["id"] for e in events] == [body["id"]]
    data = events[0]["data"]
    assert data == {k: v for k, v in body.items() if k not in ("user", "organization_name")}


def test_create_membership_refusals(client) -> None:
    org = _org(client)
    user = _user(client)
    cases = [
        ({"user_id": user["id"], "organization_id": "org_missing"}, 404),
        ({"user_id": "user_missing", "organization_id": org["id"]}, 404),
        ({"user_id": user["id"], "organization_id": org["id"], "role_slug": "nope"}, 422),
        ({"user_id": user["id"], "organization_id": org["id"], "role_slugs": []}, 422),
        (
            {"user_id": user["id"], "organization_id": org["id"], "role_slugs": ["member", "x"]},
            422,
        ),
    ]
    for body, status in cases:
        answer = client.post(BASE, json=body)
        assert answer.status_code == status, (body, answer.text)
    assert _events(client, "organization_membership.created", org["id"]) == []
    first = client.post(BASE, json={"user_id": user["id"], "organization_id": org["id"]})
    assert first.status_code == 201, first.text
    again = client.post(BASE, json={"user_id": user["id"], "organization_id": org["id"]})
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "organization_membership_already_exists"


def test_create_reactivates_an_inactive_membership(client) -> None:
    org = _org(client)
    user = _user(client)
    role = _org_role(client, org["id"])
    first = client.post(BASE, json={"user_id": user["id"], "organization_id": org["id"]})
    membership_id = first.json()["id"]
    assert client.put(f"{BASE}/{membership_id}/deactivate").json()["status"] == "inactive"
    again = client.post(
        BASE, json={"user_id": user["id"], "organization_id": org["id"], "role_slug": role}
    )
    assert again.status_code == 201, again.text
    assert again.json()["id"] == membership_id
    assert again.json()["status"] == "active"
    assert again.json()["role"] == {"slug": role}


def test_concurrent_creates_with_one_idempotency_key_act_once(live) -> None:
    def post(body: dict, key: str) -> httpx.Response:
        return httpx.post(
            f"{live.url}{BASE}",
            json=body,
            headers={**HEADERS, "Idempotency-Key": key},
            timeout=10,
        )

    with (
        ThreadPoolExecutor(max_workers=6) as pool,
        httpx.Client(base_url=live.url, headers=HEADERS, timeout=10) as client,
    ):
        org = _org(client)
        for _ in range(4):
            body = {"user_id": _user(client)["id"], "organization_id": org["id"]}
            key = str(uuid.uuid4())
            answers = list(pool.map(lambda _: post(body, key), range(6)))
            assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
            assert len({a.json()["id"] for a in answers}) == 1
        created = _events(client, "organization_membership.created", org["id"])
        assert len(created) == 4


def test_embedded_sqlite_keeps_both_paths(tmp_path, monkeypatch) -> None:
    """SQLite (the embedded default): reads fall back to the threadpool, and the key claim
    uses SQLite's ``ON CONFLICT DO NOTHING``."""
    from idp_sync.config import Settings
    from idp_sync.db import upgrade

    for name in ("DATABASE_URL", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(IDP_SYNC_DATA_DIR=str(tmp_path / "data"), IDP_SYNC_API_KEY=API_KEY)  # type: ignore[call-arg]
    upgrade(settings.effective_database_url)
    runtime = Runtime(settings)
    server = serve(runtime)
    try:
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as http:
            org = _org(http)
            user = _user(http)
            body = {"user_id": user["id"], "organization_id": org["id"]}
            key = {"Idempotency-Key": str(uuid.uuid4())}
            first = http.post(BASE, json=body, headers=key)
            second = http.post(BASE, json=body, headers=key)
            assert first.status_code == second.status_code == 201, (first.text, second.text)
            assert second.json() == first.json()
            reused = http.post(BASE, json={**body, "role_slug": "member"}, headers=key)
            assert reused.status_code == 422, reused.text
            assert reused.json()["code"] == "idempotency_key_reused"
            assert len(_events(http, "organization_membership.created", org["id"])) == 1
            got = http.get(f"{BASE}/{first.json()['id']}")
            assert got.status_code == 200, got.text
            assert got.json() == _expected(runtime, first.json()["id"], org["name"])
    finally:
        server.stop()
        runtime.dispose()


# --- the event-loop create (memberships/create_async.py) -------------------------------


def _paths() -> dict[str, float]:
    from prometheus_client import REGISTRY

    return {
        path: REGISTRY.get_sample_value(
            "idp_sync_api_paths_total", {"route": f"POST {BASE}", "path": path}
        )
        or 0.0
        for path in ("event_loop", "unit_of_work")
    }


def _went(before: dict[str, float], **expected: int) -> None:
    after = _paths()
    assert {k: after[k] - before[k] for k in after} == {
        "event_loop": expected.get("event_loop", 0),
        "unit_of_work": expected.get("unit_of_work", 0),
    }


def _stored(runtime: Runtime, membership_id: str) -> dict:
    """What the create wrote besides the answer: rows, audit, explanation."""
    from sqlalchemy import select

    from idp_sync.memberships.models import MembershipAudit

    with runtime.session() as session:
        membership = session.get(OrganizationMembership, membership_id)
        assert membership is not None
        audits = session.scalars(
            select(MembershipAudit).where(MembershipAudit.membership_id == membership_id)
        ).all()
        return {
            "explanation": serializers.explanation(membership),
            "role_ids": [r.role_id for r in membership.roles],
            "api_role_ids": [r.role_id for r in membership.api_roles],
            "audit": [(a.before_roles, a.after_roles, a.source, a.reason) for a in audits],
        }


def test_the_common_create_runs_on_the_event_loop_and_writes_what_the_unit_of_work_does(
    live, client
) -> None:
    org = _org(client)
    role = _org_role(client, org["id"])
    plain, with_role = _user(client), _user(client)
    key = str(uuid.uuid4())
    before = _paths()
    created = client.post(
        BASE,
        json={"user_id": plain["id"], "organization_id": org["id"]},
        headers={"Idempotency-Key": key},
    )
    assert created.status_code == 201, created.text
    _went(before, event_loop=1)
    body = created.json()
    assert body == _expected(live.runtime, body["id"], org["name"])
    assert body["user"] == plain
    stored = _stored(live.runtime, body["id"])
    assert stored["explanation"] == {
        "object": "role_explanation",
        "organization_membership_id": body["id"],
        "roles": ["member"],
        "source": "default",
        "uses_default": True,
        "matched_groups": [],
        "mapping_ids": [],
        "api_roles": [],
    }
    assert stored["audit"] == [([], ["member"], "default", "membership_created")]

    # The key's stored answer is the answer, byte for byte as JSON (the user rendered by
    # PostgreSQL there): a retry gets it from the unit of work, and acts no more.
    before = _paths()
    again = client.post(
        BASE,
        json={"user_id": plain["id"], "organization_id": org["id"]},
        headers={"Idempotency-Key": key},
    )
    assert again.status_code == 201 and again.json() == body
    _went(before, unit_of_work=1)

    before = _paths()
    second = client.post(
        BASE, json={"user_id": with_role["id"], "organization_id": org["id"], "role_slug": role}
    )
    assert second.status_code == 201, second.text
    _went(before, event_loop=1)
    assert second.json() == _expected(live.runtime, second.json()["id"], org["name"])
    assert second.json()["roles"] == [{"slug": role}]
    stored = _stored(live.runtime, second.json()["id"])
    assert stored["explanation"]["source"] == "api"
    assert stored["explanation"]["api_roles"] == [role]
    assert stored["role_ids"] == stored["api_role_ids"] and len(stored["role_ids"]) == 1
    created_events = _events(client, "organization_membership.created", org["id"])
    assert sorted(e["data"]["id"] for e in created_events) == sorted(
        [body["id"], second.json()["id"]]
    )


def test_every_refusal_is_answered_by_the_unit_of_work_with_nothing_written(client) -> None:
    org = _org(client)
    user = _user(client)
    bodies = [
        {"user_id": user["id"], "organization_id": "org_missing"},
        {"user_id": "user_missing", "organization_id": org["id"]},
        {"user_id": user["id"], "organization_id": org["id"], "role_slug": "nope"},
        {"user_id": user["id"], "organization_id": org["id"], "role_slugs": ["member", "x"]},
        {"user_id": user["id"]},
    ]
    before = _paths()
    for body in bodies:
        answer = client.post(BASE, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert answer.status_code in (404, 422), (body, answer.text)
    bad_json = client.post(BASE, content=b"{", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400, bad_json.text
    _went(before, unit_of_work=len(bodies) + 1)
    assert _events(client, "organization_membership.created", org["id"]) == []
    # The keys of refused requests were not kept: the same key may act afterwards.
    key = str(uuid.uuid4())
    refused = client.post(
        BASE, json={**bodies[2], "role_slug": "nope"}, headers={"Idempotency-Key": key}
    )
    assert refused.status_code == 422
    good = {"user_id": user["id"], "organization_id": org["id"]}
    before = _paths()
    reused = client.post(BASE, json=good, headers={"Idempotency-Key": key})
    assert reused.status_code == 201, reused.text
    _went(before, event_loop=1)
    assert len(_events(client, "organization_membership.created", org["id"])) == 1


def test_a_configuration_change_is_seen_by_the_next_create(live, client) -> None:
    org = _org(client)
    first = client.post(BASE, json={"user_id": _user(client)["id"], "organization_id": org["id"]})
    assert first.json()["roles"] == [{"slug": "member"}]  # the organization's roles now cached
    role = _org_role(client, org["id"])  # a new role: the configuration token changes
    before = _paths()
    with_new_role = client.post(
        BASE, json={"user_id": _user(client)["id"], "organization_id": org["id"], "role_slug": role}
    )
    assert with_new_role.status_code == 201, with_new_role.text
    assert with_new_role.json()["roles"] == [{"slug": role}]
    _went(before, event_loop=1)
    changed = client.put(
        f"/organizations/{org['id']}/authorization_settings", json={"default_role_slug": role}
    )
    assert changed.status_code in (200, 202), changed.text
    before = _paths()
    defaulted = client.post(
        BASE, json={"user_id": _user(client)["id"], "organization_id": org["id"]}
    )
    assert defaulted.status_code == 201, defaulted.text
    assert defaulted.json()["roles"] == [{"slug": role}]
    _went(before, event_loop=1)
    assert _stored(live.runtime, defaulted.json()["id"])["explanation"]["uses_default"] is True


def test_a_user_an_idp_source_reaches_is_created_by_the_unit_of_work(live, client) -> None:
    """A directory user (or an SSO profile) of the pair may give the membership its roles:
    the resolver's IdP inputs are loaded by the unit of work, so it answers."""
    from idp_sync.directory.models import DirectoryUser
    from idp_sync.ids import new_id

    org = _org(client)
    user = _user(client)
    directory = client.post(
        "/directories",
        json={"organization_id": org["id"], "name": "Okta", "type": "okta scim v2.0"},
    )
    assert directory.status_code == 201, directory.text
    with live.runtime.transaction() as session:
        session.add(
            DirectoryUser(
                id=new_id("directory_user"),
                directory_id=directory.json()["id"],
                organization_id=org["id"],
                user_name=user["email"],
                user_name_key=user["email"].lower(),
                email=user["email"],
                user_id=user["id"],
            )
        )
    before = _paths()
    created = client.post(BASE, json={"user_id": user["id"], "organization_id": org["id"]})
    assert created.status_code == 201, created.text
    _went(before, unit_of_work=1)
    assert created.json() == _expected(live.runtime, created.json()["id"], org["name"])


def test_concurrent_creates_of_one_pair_make_one_membership(live) -> None:
    with (
        ThreadPoolExecutor(max_workers=6) as pool,
        httpx.Client(base_url=live.url, headers=HEADERS, timeout=10) as client,
    ):
        org = _org(client)
        for _ in range(3):
            body = {"user_id": _user(client)["id"], "organization_id": org["id"]}
            answers = list(
                pool.map(
                    lambda _: httpx.post(f"{live.url}{BASE}", json=body, headers=HEADERS), range(6)
                )
            )
            codes = sorted(a.status_code for a in answers)
            assert codes == [201] + [409] * 5, [a.text for a in answers]
        assert len(_events(client, "organization_membership.created", org["id"])) == 3


def test_postgres_renders_users_as_the_serializer_does(live, client) -> None:
    """``queries.user_json_sql`` (the stored answer of an event-loop create) against
    ``user_of_row`` (every other answer), on users with nulls, metadata and datetimes
    whose microseconds would round differently than they truncate."""
    import datetime as dt

    from sqlalchemy import text

    from idp_sync.memberships.queries import user_json_sql
    from idp_sync.users.models import User
    from idp_sync.users.serializers import user as render

    made = [_user(client)["id"] for _ in range(2)]
    with live.runtime.transaction() as session:
        first = session.get(User, made[0])
        assert first is not None
        first.last_sign_in_at = dt.datetime(2026, 3, 4, 5, 6, 7, 999_999, tzinfo=dt.UTC)
        first.created_at = dt.datetime(2025, 12, 31, 23, 59, 59, 500, tzinfo=dt.UTC)
        first.first_name = None
        first.metadata_ = {}
    with live.runtime.session() as session:
        for user_id in made:
            user = session.get(User, user_id)
            assert user is not None
            sql = text(f"SELECT {user_json_sql('u')} AS o FROM users AS u WHERE u.id = :id")
            assert session.execute(sql, {"id": user_id}).scalar_one() == render(user)
