"""SCIM on the event loop: the member PATCH (``directory/scim/members_async.py``) writes
what the unit of work writes, and its directory events reach the worker without an outbox
row; the userName lookup (``users_async.py``) answers what the unit of work answers.
Neither refuses anything itself: every other request is answered by the unit of work."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from dsync_helpers import (
    assert_scim_error,
    create_group,
    create_user,
    make_directory,
    make_org,
    patch,
    scim_client,
    sequence_events,
)

from conftest import unique, wait_for
from idp_sync.directory import serializers as ser
from idp_sync.directory.models import DirectoryEvent, DirectoryGroup, DirectoryUser
from idp_sync.directory.scim.members_async import MAX_MEMBERS
from idp_sync.directory.scim.routing import KNOWN_DIRECTORIES

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim

ROUTE = "PATCH /scim/v2/{directory_id}/Groups/{group_id}"
USERS_ROUTE = "POST /scim/v2/{directory_id}/Users"
LOOKUP_ROUTE = "GET /scim/v2/{directory_id}/Users"


def _paths(route: str = ROUTE) -> dict[str, float]:
    from prometheus_client import REGISTRY

    return {
        path: REGISTRY.get_sample_value("idp_sync_api_paths_total", {"route": route, "path": path})
        or 0.0
        for path in ("event_loop", "unit_of_work")
    }


def _went(before: dict[str, float], route: str = ROUTE, **expected: int) -> None:
    after = _paths(route)
    assert {k: after[k] - before[k] for k in after} == {
        "event_loop": expected.get("event_loop", 0),
        "unit_of_work": expected.get("unit_of_work", 0),
    }


def _add(*ids: str) -> dict[str, Any]:
    return {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}


def _remove(*ids: str) -> dict[str, Any]:
    return {"op": "remove", "path": "members", "value": [{"value": i} for i in ids]}


def _written(engine, group_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The rows a member PATCH leaves: members, events about the group, directory events
    (with their correlation ids) and outbox rows naming them."""
    with engine.connect() as conn:
        members = conn.execute(
            sa.text("SELECT user_id FROM directory_group_members WHERE group_id = :g"),
            {"g": group_id},
        ).scalars()
        events = conn.execute(
            sa.text(
                "SELECT event, data FROM events WHERE event LIKE 'dsync.group.user_%' "
                "AND data -> 'group' ->> 'id' = :g ORDER BY id"
            ),
            {"g": group_id},
        ).all()
        work = conn.execute(
            sa.text(
                "SELECT id, kind, user_ids, correlation_id FROM directory_events "
                "WHERE group_id = :g ORDER BY id"
            ),
            {"g": group_id},
        ).all()
        outbox = conn.execute(
            sa.text("SELECT kwargs ->> 'event_id' FROM outbox_messages WHERE task_name = :t"),
            {"t": "idp_sync.directory.sync"},
        ).scalars()
        return {
            "members": sorted(members),
            "events": [(e.event, e.data) for e in events],
            "work": [(w.kind, w.user_ids, w.correlation_id) for w in work],
            "work_ids": [w.id for w in work],
            "outbox": set(outbox),
        }


def test_a_member_patch_runs_on_the_event_loop_and_writes_what_the_unit_of_work_does(
    live, directory, scim
) -> None:
    users = [create_user(scim)["id"] for _ in range(3)]
    by_loop = create_group(scim)["id"]
    by_unit = create_group(scim)["id"]
    assert (
        KNOWN_DIRECTORIES[directory["id"]].type == directory["type"]
    )  # learnt by the unit of work
    for group_id, way in ((by_loop, "event_loop"), (by_unit, "unit_of_work")):
        before = _paths()
        for ops in (
            [_add(users[0], users[1])],
            [_remove(users[1]), _add(users[2])],
            [_add(users[0])],
        ):
            if way == "unit_of_work":  # the event loop cannot pick the adapter: it falls back
                KNOWN_DIRECTORIES.pop(directory["id"])
            answer = patch(scim, f"/Groups/{group_id}", *ops)  # the last adds a present member
            assert answer.status_code == 204, answer.text
        _went(before, **{way: 3})
    # The event loop's events are reserved (the first two PATCHes changed members, the
    # third nothing) until the sequencer writes them.
    assert _written(live.runtime.engine, by_loop)["events"] == []
    with live.runtime.engine.connect() as conn:
        pending = conn.execute(
            sa.text(
                "SELECT added, removed FROM pending_member_events WHERE group_id = :g ORDER BY id"
            ),
            {"g": by_loop},
        ).all()
    assert [tuple(p) for p in pending] == [(sorted(users[:2]), []), ([users[2]], [users[1]])]
    sequence_events(live.runtime.engine)
    loop, unit = _written(live.runtime.engine, by_loop), _written(live.runtime.engine, by_unit)
    assert loop["members"] == unit["members"] == sorted([users[0], users[2]])
    # The same events (a request writes its additions, then its removals), with the
    # same data but the group's own part.
    assert [name for name, _ in loop["events"]] == [
        "dsync.group.user_added",
        "dsync.group.user_added",
        "dsync.group.user_added",
        "dsync.group.user_removed",
    ]
    assert [(n, {**d, "group": None}) for n, d in loop["events"]] == [
        (n, {**d, "group": None}) for n, d in unit["events"]
    ]
    with live.runtime.session() as session:
        group = session.get(DirectoryGroup, by_loop)
        user = session.get(DirectoryUser, users[0])
        assert group is not None and user is not None
        assert loop["events"][0][1] == ser.membership_event(user, group)
    # Directory events alike, each with the request's correlation id; only the unit of
    # work's have outbox rows (the event loop's are drained by ``sync_pending``).
    assert (
        [(k, u) for k, u, _ in loop["work"]]
        == [(k, u) for k, u, _ in unit["work"]]
        == [
            ("group.members", sorted(users[:2])),
            ("group.members", sorted(users[1:])),
        ]
    )
    assert all(cid for _, _, cid in loop["work"] + unit["work"])
    assert not set(loop["work_ids"]) & loop["outbox"]
    assert set(unit["work_ids"]) <= unit["outbox"]


def test_every_other_patch_is_answered_by_the_unit_of_work(live, api, directory, scim) -> None:
    user = create_user(scim)["id"]
    group = create_group(scim)["id"]
    path = f"/Groups/{group}"
    before = _paths()
    # A projection asked for: the group comes back, members included.
    shown = patch(scim, path, _add(user), attributes="members")
    assert shown.status_code == 200 and [m["value"] for m in shown.json()["members"]] == [user]
    # Not only members, or all of them replaced.
    renamed = patch(scim, path, {"op": "replace", "path": "displayName", "value": unique("G")})
    assert renamed.status_code == 204, renamed.text
    replaced = patch(scim, path, {"op": "replace", "path": "members", "value": []})
    assert replaced.status_code == 204, replaced.text
    # Invalid bodies and unknown groups get the unit of work's SCIM errors.
    assert_scim_error(patch(scim, path, {"op": "bogus", "path": "members"}), 400)
    assert_scim_error(patch(scim, "/Groups/group_missing", _add(user)), 404)
    bad_json = scim.patch(path, content=b"{")
    assert_scim_error(bad_json, 400, "invalidSyntax")
    # A large PATCH (its events would hold the event loop): in the threadpool.
    many = [f"directory_user_absent_{i}" for i in range(MAX_MEMBERS)]
    assert patch(scim, path, _add(user, *many)).status_code == 204
    _went(before, unit_of_work=7)
    # Another directory's group, or its token, opens nothing here; neither does a token
    # that was rotated away, from the first request after the rotation.
    other = make_directory(api)
    with scim_client(other) as other_scim:
        other_group = create_group(other_scim)["id"]
        assert_scim_error(patch(scim, f"/Groups/{other_group}", _add(user)), 404)
        foreign = other_scim.patch(
            f"{directory['scim']['base_url']}/Groups/{group}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [_add(user)],
            },
        )
        assert foreign.status_code in (401, 404), foreign.text
    rotated = api.post(f"/directories/{directory['id']}/scim_token")
    assert rotated.status_code in (200, 201), rotated.text
    stale = patch(scim, path, _add(user))
    assert_scim_error(stale, 401)
    fresh = {
        **directory,
        "scim": {**directory["scim"], "bearer_token": rotated.json()["scim"]["bearer_token"]},
    }
    with scim_client(fresh) as scim2:
        before = _paths()
        assert patch(scim2, path, _add(user)).status_code == 204
        _went(before, event_loop=1)
    assert _written(live.runtime.engine, group)["members"] == [user]


def test_a_user_pushed_into_a_mapped_group_gets_the_role_through_the_drain(
    live, worker, api, sdk
) -> None:
    org = make_org(api)
    role = sdk.authorization.create_environment_role(slug=unique("eng"), name="Eng")
    directory = make_directory(api, "azure scim v2.0", org["id"])
    with scim_client(directory) as scim:
        user = create_user(scim)
        group = create_group(scim)
        mapping = api.post(
            f"/directories/{directory['id']}/group_role_mappings",
            json={"group": group["id"], "role_slug": role.slug},
        )
        assert mapping.status_code == 201, mapping.text
        before = _paths()
        # Entra's capitalised op: normalised by the directory's adapter on this path too.
        answer = patch(
            scim,
            f"/Groups/{group['id']}",
            {"op": "Add", "path": "members", "value": [{"value": user["id"]}]},
        )
        assert answer.status_code == 204, answer.text
        _went(before, event_loop=1)

    def role_of_user() -> list[str] | None:
        found = api.get("/directory_users", params={"directory": directory["id"]}).json()["data"]
        mine = [u for u in found if u["id"] == user["id"]]
        return [r["slug"] for r in mine[0]["roles"]] if mine else None

    assert wait_for(lambda: role_of_user() == [role.slug], timeout=15), role_of_user()

    def pending() -> int:
        with live.runtime.session() as session:
            return int(
                session.scalar(
                    sa.select(sa.func.count())
                    .select_from(DirectoryEvent)
                    .where(
                        DirectoryEvent.directory_id == directory["id"],
                        DirectoryEvent.processed_at.is_(None),
                    )
                )
                or 0
            )

    # The other events (the user's and group's creation, sent by the unit of work with
    # outbox rows) are folded in too, by whichever task takes them first.
    assert wait_for(lambda: pending() == 0, timeout=15), pending()


def _drain(live) -> int:  # type: ignore[no-untyped-def]
    """Run the drain task in process until a run finds nothing left (events other tests
    left pending, with no worker, come first: oldest first)."""
    from idp_sync.directory import tasks as directory_tasks

    app = live.runtime.celery
    assert app is not None
    synced = 0
    for _ in range(100):
        ran = app.tasks[directory_tasks.DRAIN_TASK].apply()
        synced += ran.get()
        with live.runtime.session() as session:
            if (
                session.scalar(
                    sa.select(sa.func.count())
                    .select_from(DirectoryEvent)
                    .where(DirectoryEvent.processed_at.is_(None))
                )
                == 0
            ):
                break
        if ran.get() == 0:
            break
    return synced


def test_the_drain_folds_events_that_have_no_message(live, api, directory, scim) -> None:
    """Beat's safety net: events whose wake-up was lost are folded in by a run of
    ``sync_pending`` on its own, oldest first, across directories."""
    from idp_sync.directory.sync import take_pending_event

    user = create_user(scim)["id"]
    group = create_group(scim)["id"]
    assert patch(scim, f"/Groups/{group}", _add(user)).status_code == 204
    with live.runtime.session() as session:
        first = take_pending_event(session)
        assert first is not None
        skipping = take_pending_event(session, [first.directory_id])
        assert skipping is None or skipping.directory_id != first.directory_id
    synced = _drain(live)
    assert synced >= 1
    with live.runtime.session() as session:
        assert take_pending_event(session) is None
        linked = session.scalar(sa.select(DirectoryUser.user_id).where(DirectoryUser.id == user))
        assert linked is not None  # the worker's work was done: the user is linked


def test_a_directory_that_fails_does_not_hold_up_the_others(live, api, monkeypatch) -> None:
    """A batch failing for a reason other than the database stays pending, logged; the
    drain goes on with the other directories."""
    from idp_sync.directory import sync
    from idp_sync.directory.sync import take_pending_event

    made = []
    for _ in range(2):
        directory = make_directory(api)
        with scim_client(directory) as scim:
            user = create_user(scim)["id"]
            group = create_group(scim)["id"]
            assert patch(scim, f"/Groups/{group}", _add(user)).status_code == 204
        made.append(directory["id"])
    real = sync.process_pending

    def failing(session, event_id):  # type: ignore[no-untyped-def]
        event = session.get(DirectoryEvent, event_id)
        if event.directory_id == made[0]:
            raise RuntimeError("a bug in folding this directory")
        return real(session, event_id)

    monkeypatch.setattr(sync, "process_pending", failing)
    _drain(live)
    with live.runtime.session() as session:
        left = session.scalars(
            sa.select(DirectoryEvent.directory_id).where(DirectoryEvent.processed_at.is_(None))
        ).all()
    assert made[0] in left and made[1] not in left
    monkeypatch.setattr(sync, "process_pending", real)
    _drain(live)
    with live.runtime.session() as session:
        assert take_pending_event(session) is None


# --- the userName lookup ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"filter": 'userName eq "Ada@Example.com"'}, "ada@example.com"),
        ({"filter": 'USERNAME EQ "a b"', "startIndex": "1", "count": "100"}, "a b"),
        ({"filter": ' userName eq "x" '}, "x"),
        ({"filter": 'userName eq "x"', "startIndex": "2"}, None),
        ({"filter": 'userName eq "x"', "count": "0"}, None),
        ({"filter": 'userName eq "x"', "count": "ten"}, None),
        ({"filter": 'userName eq "x"', "attributes": "userName"}, None),
        ({"filter": 'userName eq "x" and active eq true'}, None),
        ({"filter": 'userName eq "a\\"b"'}, None),
        ({"filter": 'userName eq "null"'}, None),
        ({"filter": 'emails.value eq "x"'}, None),
        ({"filter": 'userName ne "x"'}, None),
        ({}, None),
    ],
)
def test_only_the_exact_user_name_lookup_is_taken(params: dict[str, str], key: str | None) -> None:
    from idp_sync.directory.scim.users_async import user_name_query

    assert user_name_query(params) == key


def test_the_user_name_lookup_answers_as_the_unit_of_work(live, api, directory, scim) -> None:
    made = create_user(scim, f"{unique('Mixed.Case')}@Example.com")
    name = made["userName"]
    queries = [
        {"filter": f'userName eq "{name}"'},
        {"filter": f'userName eq "{name.upper()}"', "startIndex": "1", "count": "100"},  # Okta
        {"filter": f'userName eq "{unique("nobody")}@example.com"'},
    ]
    for params in queries:
        before = _paths(LOOKUP_ROUTE)
        fast = scim.get("/Users", params=params)
        _went(before, LOOKUP_ROUTE, event_loop=1)
        KNOWN_DIRECTORIES.pop(directory["id"])
        before = _paths(LOOKUP_ROUTE)
        slow = scim.get("/Users", params=params)
        _went(before, LOOKUP_ROUTE, unit_of_work=1)
        assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
        assert fast.headers["content-type"] == slow.headers["content-type"]
        assert fast.json() == slow.json()
    assert scim.get("/Users", params=queries[0]).json()["Resources"] == [made]
    assert scim.get("/Users", params=queries[2]).json()["totalResults"] == 0
    # A deleted user is not found, by either way.
    assert scim.delete(f"/Users/{made['id']}").status_code == 204
    assert scim.get("/Users", params=queries[0]).json()["totalResults"] == 0


def test_the_user_name_lookup_opens_nothing_for_other_tokens(live, api, directory, scim) -> None:
    create_user(scim)
    query = {"filter": 'userName eq "x@example.com"'}
    other = make_directory(api)
    with scim_client(other) as other_scim:
        create_user(other_scim)
        before = _paths(LOOKUP_ROUTE)
        foreign = other_scim.get(f"{directory['scim']['base_url']}/Users", params=query)
        assert_scim_error(foreign, 404)
        _went(before, LOOKUP_ROUTE, unit_of_work=1)
    with httpx.Client(base_url=directory["scim"]["base_url"]) as anonymous:
        wrong = anonymous.get("/Users", params=query, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    rotated = api.post(f"/directories/{directory['id']}/scim_token")
    assert rotated.status_code in (200, 201), rotated.text
    assert_scim_error(scim.get("/Users", params=query), 401)


# --- POST /Users ------------------------------------------------------------------------


def _user_rows(engine, user_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        row = (
            conn.execute(sa.text("SELECT * FROM directory_users WHERE id = :u"), {"u": user_id})
            .mappings()
            .one()
        )
        event = conn.execute(
            sa.text(
                "SELECT data FROM events WHERE event = 'dsync.user.created' AND data ->> 'id' = :u"
            ),
            {"u": user_id},
        ).scalar_one()
        work = conn.execute(
            sa.text(
                "SELECT id, kind, user_ids, correlation_id FROM directory_events "
                "WHERE user_ids ->> 0 = :u"
            ),
            {"u": user_id},
        ).one()
        outbox = conn.execute(
            sa.text("SELECT count(*) FROM outbox_messages WHERE kwargs ->> 'event_id' = :w"),
            {"w": work.id},
        ).scalar_one()
        return {"row": dict(row), "event": event, "work": work, "outbox": outbox}


def test_a_user_created_on_the_event_loop_is_what_the_unit_of_work_creates(
    live, directory, scim
) -> None:
    from dsync_helpers import user_body

    create_user(scim)  # the unit of work learns the directory
    extra = {
        "externalId": unique("ext"),
        "displayName": "Ada L",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "R&D",
            "manager": {"value": "mgr-1"},
        },
        "x-unknown": {"kept": True},
    }
    answers = {}
    for way in ("event_loop", "unit_of_work"):
        if way == "unit_of_work":
            KNOWN_DIRECTORIES.pop(directory["id"])
        before = _paths(USERS_ROUTE)
        answer = scim.post("/Users", json=user_body(None, **{**extra, "externalId": unique("e")}))
        assert answer.status_code == 201, answer.text
        assert answer.headers["location"] == answer.json()["meta"]["location"]
        _went(before, USERS_ROUTE, **{way: 1})
        answers[way] = answer.json()
    fast, slow = answers["event_loop"], answers["unit_of_work"]
    varying = ("id", "userName", "emails", "externalId", "meta")
    assert {k: v for k, v in fast.items() if k not in varying} == {
        k: v for k, v in slow.items() if k not in varying
    }
    assert scim.get(f"/Users/{fast['id']}").json() == fast
    rows = {w: _user_rows(live.runtime.engine, answers[w]["id"]) for w in answers}
    with live.runtime.session() as session:
        user = session.get(DirectoryUser, fast["id"])
        assert user is not None
        assert rows["event_loop"]["event"] == ser.directory_user(user)
    same = ("directory_id", "organization_id", "display_name", "active", "version", "attributes")
    for column in same[:-1]:
        assert rows["event_loop"]["row"][column] == rows["unit_of_work"]["row"][column]
    assert rows["event_loop"]["row"]["user_name_key"] == fast["userName"].lower()
    for way in answers:
        assert rows[way]["work"].kind == "user.created" and rows[way]["work"].correlation_id
    assert rows["event_loop"]["outbox"] == 0 and rows["unit_of_work"]["outbox"] == 1
    # The worker links it to a user of the organization, through the drain.
    _drain(live)
    with live.runtime.session() as session:
        linked = session.scalar(
            sa.select(DirectoryUser.user_id).where(DirectoryUser.id == fast["id"])
        )
        assert linked is not None


def test_a_refused_user_is_answered_by_the_unit_of_work_with_nothing_written(
    live, directory, scim
) -> None:
    from dsync_helpers import user_body

    taken = create_user(scim)
    before = _paths(USERS_ROUTE)
    duplicate = scim.post("/Users", json=user_body(taken["userName"].upper()))
    assert_scim_error(duplicate, 409, "uniqueness")
    no_name = scim.post("/Users", json={"schemas": user_body()["schemas"], "active": True})
    assert_scim_error(no_name, 400)
    bad_active = scim.post("/Users", json=user_body(None, active="maybe"))
    assert_scim_error(bad_active, 400)
    too_long = scim.post("/Users", json=user_body("x" * 300 + "@example.com"))
    assert_scim_error(too_long, 400)
    _went(before, USERS_ROUTE, unit_of_work=4)
    with live.runtime.session() as session:
        count = session.scalar(
            sa.select(sa.func.count())
            .select_from(DirectoryUser)
            .where(DirectoryUser.directory_id == directory["id"])
        )
        assert count == 1


def test_okta_lookup_then_create_then_lookup_all_on_the_event_loop(directory, scim) -> None:
    from dsync_helpers import user_body

    create_user(scim)  # the unit of work learns the directory
    name = f"{unique('okta')}@example.com"
    query = {"filter": f'userName eq "{name}"', "startIndex": "1", "count": "100"}
    before = {r: _paths(r) for r in (USERS_ROUTE, LOOKUP_ROUTE)}
    assert scim.get("/Users", params=query).json()["totalResults"] == 0
    created = scim.post("/Users", json=user_body(name))
    assert created.status_code == 201, created.text
    found = scim.get("/Users", params=query).json()
    assert found["totalResults"] == 1 and found["Resources"] == [created.json()]
    _went(before[USERS_ROUTE], USERS_ROUTE, event_loop=1)
    _went(before[LOOKUP_ROUTE], LOOKUP_ROUTE, event_loop=2)


def _batch_sizes() -> tuple[float, float]:
    from prometheus_client import REGISTRY

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(f"idp_sync_scim_create_batch_size_{name}") or 0.0

    return sample("count"), sample("sum")


def test_creates_arriving_together_are_written_by_one_statement(live, api, directory) -> None:
    """``users_async._Writer``: the creates waiting while a statement is in flight are
    written by the next one; within it, a taken userName (by an earlier row of the same
    batch too) and a token that does not open the directory write nothing for that user."""
    import asyncio
    from types import SimpleNamespace

    from dsync_helpers import user_body

    from idp_sync.directory.scim import users_async
    from idp_sync.runtime import PostgresReader

    token = directory["scim"]["bearer_token"]
    names = [f"{unique('batch')}@example.com" for _ in range(12)]
    bodies = [user_body(n) for n in names] + [user_body(names[0].upper()) for _ in range(2)]
    users = [
        users_async.create_values(directory["id"], directory["organization_id"], b) for b in bodies
    ]
    stranger = users_async.create_values(
        directory["id"], directory["organization_id"], user_body(f"{unique('x')}@example.com")
    )
    assert stranger is not None and all(u is not None for u in users)
    runtime: Any = SimpleNamespace(celery=None)

    async def create_all() -> list[dict[str, Any] | None]:
        reader = PostgresReader(live.runtime.settings.database_url)
        try:
            calls = [
                users_async.create_user(runtime, reader, token=token, user=u, base_url="http://x")
                for u in users
            ]
            calls.append(
                users_async.create_user(
                    runtime, reader, token="not-the-token", user=stranger, base_url="http://x"
                )
            )
            return await asyncio.gather(*calls)
        finally:
            await reader.close()

    before = _batch_sizes()
    answers = asyncio.run(create_all())
    count, total = (a - b for a, b in zip(_batch_sizes(), before, strict=True))
    assert (count, total) == (1, len(users) + 1)  # one statement for all fifteen
    # The twelve names, each once; the two upper-cased repeats and the stranger: nothing.
    assert [a is not None for a in answers] == [True] * 12 + [False] * 3
    assert [a["userName"] for a in answers[:12] if a] == names
    with live.runtime.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT du.id, "
                "(SELECT count(*) FROM events e WHERE e.event = 'dsync.user.created' "
                "AND e.data ->> 'id' = du.id) AS events, "
                "(SELECT count(*) FROM directory_events w WHERE w.kind = 'user.created' "
                "AND w.user_ids ->> 0 = du.id) AS work "
                "FROM directory_users du WHERE du.directory_id = :d ORDER BY du.id"
            ),
            {"d": directory["id"]},
        ).all()
    assert sorted(r.id for r in rows) == sorted(a["id"] for a in answers if a)
    assert all((r.events, r.work) == (1, 1) for r in rows)


def test_concurrent_posts_get_what_one_at_a_time_would(live, directory, scim) -> None:
    """Sixteen POSTs at once, four of them the same userName in different cases: one of
    those four is created and three answered 409 (by the unit of work); the twelve
    others are created, each with its event."""
    from concurrent.futures import ThreadPoolExecutor

    from dsync_helpers import user_body

    create_user(scim)  # the unit of work learns the directory
    shared = f"{unique('same')}@example.com"
    bodies = [user_body(f"{unique('c')}@example.com") for _ in range(12)]
    bodies += [user_body(shared), user_body(shared.upper()), user_body(shared), user_body(shared)]

    def post(body: dict[str, Any]) -> httpx.Response:
        with scim_client(directory) as client:
            return client.post("/Users", json=body)

    before = _paths(USERS_ROUTE)
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(post, bodies))
    assert [a.status_code for a in answers[:12]] == [201] * 12, [a.text for a in answers]
    assert sorted(a.status_code for a in answers[12:]) == [201, 409, 409, 409]
    for refused in (a for a in answers[12:] if a.status_code == 409):
        assert_scim_error(refused, 409, "uniqueness")
    after = _paths(USERS_ROUTE)
    assert after["event_loop"] - before["event_loop"] == 13
    assert after["unit_of_work"] - before["unit_of_work"] == 3
    with live.runtime.engine.connect() as conn:
        events = conn.execute(
            sa.text(
                "SELECT count(*) FROM events WHERE event = 'dsync.user.created' "
                "AND data ->> 'directory_id' = :d"
            ),
            {"d": directory["id"]},
        ).scalar_one()
    assert events == 14  # the first user, twelve, and one of the four


def test_json_only_the_standard_library_reads_is_answered_as_before(directory, scim) -> None:
    """orjson parses and renders SCIM bodies; an integer beyond 64 bits (which it refuses
    both ways) still goes through the standard library: kept and shown, no 500."""
    from dsync_helpers import user_body

    create_user(scim)  # the unit of work learns the directory
    big = 2**70
    raw = json.dumps(user_body(None, **{"x-big": big}))
    created = scim.post("/Users", content=raw, headers={"Content-Type": "application/scim+json"})
    assert created.status_code == 201, created.text
    assert created.json()["x-big"] == big
    assert scim.get(f"/Users/{created.json()['id']}").json()["x-big"] == big
