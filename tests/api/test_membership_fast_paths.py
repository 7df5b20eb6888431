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
