"""The events of an event-loop member PATCH are reserved by the request and written by the
sequencer (``directory/member_events.py``): the same events the unit of work writes, in
the same place in the stream, for one member or thousands; and PostgreSQL renders
directory users and groups exactly as the serializers do."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from dsync_helpers import (
    create_group,
    create_user,
    member_events,
    patch,
    scim_client,
    sequence_events,
)

from idp_sync.directory import serializers as ser
from idp_sync.directory.mirror import EVENT_CHUNK
from idp_sync.directory.models import DirectoryGroup, DirectoryUser
from idp_sync.directory.scim.routing import KNOWN_DIRECTORIES
from idp_sync.directory.scim.schemas import ENTERPRISE

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim

ADD_MANY = 2_500  # three directory events of EVENT_CHUNK users, the last one partial


def _add(ids: list[str]) -> dict[str, Any]:
    return {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}


def _remove(ids: list[str]) -> dict[str, Any]:
    return {"op": "remove", "path": "members", "value": [{"value": i} for i in ids]}


def _seed_users(live, directory: dict[str, Any], n: int) -> list[str]:  # type: ignore[no-untyped-def]
    """``n`` directory users written straight into the mirror (SCIM-created ones would
    take a minute); rows as ``mirror.create_user`` writes them."""
    from idp_sync.directory.mirror import new_user_values

    rows = []
    for i in range(n):
        name = f"seeded{i}-{directory['id'][-8:].lower()}@example.com"
        body = {
            "userName": name,
            "name": {"givenName": "Seeded", "familyName": str(i)},
            "emails": [{"value": name, "primary": True, "type": "work"}],
            "active": True,
        }
        rows.append(new_user_values(directory["id"], directory["organization_id"], body))
    with live.runtime.transaction() as session:
        session.execute(sa.insert(DirectoryUser), rows)
    return [r["id"] for r in rows]


def test_thousands_of_members_on_the_event_loop_give_the_unit_of_works_events(
    live, directory, scim
) -> None:
    engine = live.runtime.engine
    users = sorted(_seed_users(live, directory, ADD_MANY))
    by_loop, by_unit = create_group(scim)["id"], create_group(scim)["id"]
    assert directory["id"] in KNOWN_DIRECTORIES
    assert patch(scim, f"/Groups/{by_loop}", _add(users)).status_code == 204
    # Committed: the members and the worker's directory events; the events reserved.
    with engine.connect() as conn:
        members = conn.execute(
            sa.text("SELECT count(*) FROM directory_group_members WHERE group_id = :g"),
            {"g": by_loop},
        ).scalar_one()
        work = conn.execute(
            sa.text("SELECT user_ids FROM directory_events WHERE group_id = :g ORDER BY id"),
            {"g": by_loop},
        ).scalars()
        assert members == ADD_MANY
        assert [len(w) for w in work] == [EVENT_CHUNK, EVENT_CHUNK, ADD_MANY - 2 * EVENT_CHUNK]
    assert member_events(engine, by_loop) == []
    # The unit of work writes them in the request (the directory unknown to this process).
    KNOWN_DIRECTORIES.pop(directory["id"])
    assert patch(scim, f"/Groups/{by_unit}", _add(users)).status_code == 204
    sequence_events(engine)
    loop, unit = member_events(engine, by_loop), member_events(engine, by_unit)
    assert len(loop) == len(unit) == ADD_MANY
    # Same names and data (but each its own group), users in id order, ids increasing as
    # reserved, positions following the ids.
    assert [(e, {**d, "group": None}) for _, e, _, d in loop] == [
        (e, {**d, "group": None}) for _, e, _, d in unit
    ]
    assert [d["user"]["id"] for _, _, _, d in loop] == users
    seqs = [s for _, _, s, _ in loop]
    assert None not in seqs and seqs == sorted(seqs) and len(set(seqs)) == ADD_MANY
    with live.runtime.session() as session:
        group = session.get(DirectoryGroup, by_loop)
        assert group is not None
        assert all(d["group"] == ser.directory_group(group) for _, _, _, d in loop)
        with engine.connect() as conn:
            left = conn.execute(sa.text("SELECT count(*) FROM pending_member_events")).scalar()
        assert left == 0


def test_a_reserved_event_keeps_its_place_before_later_changes(live, directory, scim) -> None:
    """A change written after the PATCH (its event committed at once) but before the
    sequencer ran is positioned after the PATCH's events, by id, as when the PATCH wrote
    them itself; and removals follow additions within one request."""
    engine = live.runtime.engine
    first, second = create_user(scim)["id"], create_user(scim)["id"]
    group = create_group(scim, members=[second])["id"]
    sequence_events(engine)
    with engine.connect() as conn:
        mark = conn.execute(sa.text("SELECT max(seq) FROM events")).scalar_one()
    assert patch(scim, f"/Groups/{group}", _add([first]), _remove([second])).status_code == 204
    renamed = scim.patch(
        f"/Users/{first}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}],
        },
    )
    assert renamed.status_code in (200, 204), renamed.text
    sequence_events(engine)
    with engine.connect() as conn:
        stream = conn.execute(
            sa.text(
                "SELECT event, data -> 'user' ->> 'id' AS user_id FROM events "
                "WHERE seq > :mark AND (data -> 'group' ->> 'id' = :g "
                "OR (event = 'dsync.user.updated' AND data ->> 'id' = :u)) ORDER BY seq"
            ),
            {"g": group, "u": first, "mark": mark},
        ).all()
    assert [tuple(r) for r in stream] == [
        ("dsync.group.user_added", first),
        ("dsync.group.user_removed", second),
        ("dsync.user.updated", None),
    ]


def test_reserved_events_are_listed_by_the_events_api(live, api, directory, scim) -> None:
    """The API positions (and so writes) pending events before it lists them."""
    user = create_user(scim)["id"]
    group = create_group(scim)["id"]
    assert patch(scim, f"/Groups/{group}", _add([user])).status_code == 204
    listed = api.get(
        "/events",
        params={
            "events": "dsync.group.user_added",
            "organization_id": directory["organization_id"],
        },
    )
    assert listed.status_code == 200, listed.text
    added = [e for e in listed.json()["data"] if e["data"]["group"]["id"] == group]
    assert [e["data"]["user"]["id"] for e in added] == [user]


AWKWARD: list[dict[str, Any]] = [
    {},
    {"emails": "someone@example.com", "title": 5},
    {"emails": [{"value": "a@x", "primary": True}, "junk", {"type": "home"}], "title": "CTO"},
    {"emails": {"value": "b@x"}},
    {ENTERPRISE.upper(): {"department": "R&D", "manager": {"value": "mgr_1"}}},
    {ENTERPRISE: {"manager": {"value": ""}, "costCenter": "7"}},
    {ENTERPRISE: {"manager": {"value": 0}}},
    {ENTERPRISE: {"manager": {"value": 0.0}}},
    {ENTERPRISE: {"manager": {"value": 2.5}}},
    {ENTERPRISE: {"manager": {"value": [1]}}},
    {ENTERPRISE: {"manager": {"value": []}}},
    {ENTERPRISE: {"manager": {"value": {}}}},
    {ENTERPRISE: {"manager": {"value": True}}},
    {ENTERPRISE: {"manager": {"value": False}}},
    {ENTERPRISE: {"manager": {"value": None}}},
    {ENTERPRISE: {"manager": "bob"}},
    {ENTERPRISE: "not an object"},
    {ENTERPRISE.lower(): {"a": 1}, ENTERPRISE: {"b": 2}},
    {"name": {"givenName": "Ünï", "familyName": "Çødé"}, "x-unknown": [None, {"deep": True}]},
]


def test_postgres_renders_directory_users_and_groups_as_the_serializers_do(
    live, directory, scim
) -> None:
    """``directory_user_json_sql`` / ``directory_group_json_sql`` (the sequencer's
    rendering of reserved events) against ``directory_user`` / ``directory_group`` (every
    other event), on rows with awkward attributes, states and datetimes."""
    users = [create_user(scim)["id"] for _ in AWKWARD]
    groups = [create_group(scim)["id"] for _ in range(2)]
    odd = dt.datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    with live.runtime.transaction() as session:
        for i, (user_id, attrs) in enumerate(zip(users, AWKWARD, strict=True)):
            user = session.get(DirectoryUser, user_id)
            assert user is not None
            user.attributes = attrs
            user.external_id = ["", None, "ext-1"][i % 3]
            user.active = i % 4 != 1
            user.deleted_at = odd if i % 5 == 2 else None
            user.created_at = odd
        group = session.get(DirectoryGroup, groups[0])
        assert group is not None
        group.external_id, group.attributes, group.updated_at = (
            "",
            {"displayName": "G", "x": [1]},
            odd,
        )
    with live.runtime.session() as session:
        user_sql = ser.directory_user_json_sql("du")
        render_user = sa.text(f"SELECT {user_sql} FROM directory_users AS du WHERE du.id = :id")
        for user_id in users:
            user = session.get(DirectoryUser, user_id)
            assert user is not None
            rendered = session.execute(render_user, {"id": user_id}).scalar_one()
            assert rendered == ser.directory_user(user), user.attributes
        group_sql = ser.directory_group_json_sql("g")
        render_group = sa.text(f"SELECT {group_sql} FROM directory_groups AS g WHERE g.id = :id")
        for group_id in groups:
            group = session.get(DirectoryGroup, group_id)
            assert group is not None
            assert session.execute(render_group, {"id": group_id}).scalar_one() == (
                ser.directory_group(group)
            )


def test_a_patch_of_an_unknown_directory_reserves_nothing(live, api, directory, scim) -> None:
    """Another directory's token on this group: 404 from the unit of work, nothing written."""
    from dsync_helpers import assert_scim_error, make_directory

    user = create_user(scim)["id"]
    group = create_group(scim)["id"]
    other = make_directory(api)
    with scim_client(other) as other_scim:
        create_user(other_scim)  # the other directory is known to this process too
        answer = other_scim.patch(
            f"{directory['scim']['base_url']}/Groups/{group}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [_add([user])],
            },
        )
        assert answer.status_code in (401, 404), answer.text
        if answer.status_code == 404:
            assert_scim_error(answer, 404)
    with live.runtime.engine.connect() as conn:
        counts = [
            conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE group_id = :g"), {"g": group}
            ).scalar_one()
            for table in ("pending_member_events", "directory_group_members")
        ]
    assert counts == [0, 0]
