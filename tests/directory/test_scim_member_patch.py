"""Member PATCHes of one group run concurrently (issue 4 point 10): the group row is only
share-locked when a PATCH changes members alone, and each member added is reported once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from dsync_helpers import (
    create_group,
    create_user,
    mapped_directory,
    member_events,
    patch,
    scim_client,
    sequence_events,
)
from sqlalchemy import func, select

from conftest import unique
from idp_sync.directory import mirror, sync
from idp_sync.directory.mirror import members_only
from idp_sync.directory.models import DirectoryEvent
from idp_sync.directory.scim.patch import PatchOp, parse_ops
from idp_sync.events.models import Event
from idp_sync.memberships.models import OrganizationMembership as OM

pytest_plugins = ["dsync_fixtures"]  # fixtures: api, directory, scim

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _ops(*ops: dict) -> list:
    return parse_ops({"schemas": [PATCH_SCHEMA], "Operations": list(ops)})


@pytest.mark.parametrize(
    ("ops", "shared"),
    [
        ([{"op": "add", "path": "members", "value": [{"value": "u1"}]}], True),
        ([{"op": "remove", "path": 'members[value eq "u1"]'}], True),
        ([{"op": "add", "value": {"members": [{"value": "u1"}]}}], True),
        ([{"op": "replace", "path": "members", "value": [{"value": "u1"}]}], False),
        ([{"op": "replace", "path": "displayName", "value": "x"}], False),
        (
            [
                {"op": "add", "path": "members", "value": [{"value": "u1"}]},
                {"op": "replace", "value": {"displayName": "x"}},
            ],
            False,
        ),
    ],
)
def test_only_member_adds_and_removes_share_the_group_lock(ops, shared) -> None:
    assert members_only(_ops(*ops)) is shared


def _added_events(engine, group_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    sequence_events(engine)  # writes what event-loop PATCHes reserved
    return [d for _, name, _, d in member_events(engine, group_id) if name.endswith("_added")]


def test_concurrent_member_patches_all_apply_and_report_each_member_once(
    directory, scim, engine
) -> None:
    users = [create_user(scim) for _ in range(8)]
    group = create_group(scim)
    path = f"/Groups/{group['id']}"

    def add(user_ids: list[str]) -> int:
        with scim_client(directory) as client:
            op = {"op": "add", "path": "members", "value": [{"value": u} for u in user_ids]}
            return patch(client, path, op).status_code

    # Each user alone, and the first user also by four requests at once (a retried push).
    batches = [[u["id"]] for u in users] + [[users[0]["id"], users[1]["id"]]] * 4
    with ThreadPoolExecutor(len(batches)) as pool:
        statuses = list(pool.map(add, batches))
    assert statuses == [204] * len(batches)

    members = {m["value"] for m in scim.get(path).json()["members"]}
    assert members == {u["id"] for u in users}
    events = _added_events(engine, group["id"])
    assert sorted(e["user"]["id"] for e in events) == sorted(u["id"] for u in users)
    by_id = {u["id"]: u for u in users}
    for event in events:
        assert event["directory_id"] == directory["id"]
        assert event["group"]["name"] == group["displayName"]
        assert event["user"]["username"] == by_id[event["user"]["id"]]["userName"]


def test_one_task_folds_many_group_changes_into_one_batch(session) -> None:
    """The worker's side of a burst of member PATCHes: one task syncs every user named
    by the pending events (memberships locked and recomputed as one batch); each user
    whose role changed gets its role and exactly one ``organization_membership.updated``;
    a user whose change was undone, and one already in its role, get nothing."""
    org, directory, group, role = mapped_directory(session)
    users = []
    for _ in range(6):
        email = f"{unique('u')}@example.com"
        body = {"userName": email, "emails": [{"value": email, "primary": True}]}
        users.append(mirror.create_user(session, directory, body))
    session.flush()
    first = session.scalar(select(func.max(DirectoryEvent.id)))
    assert sync.process_pending(session, first) == 6  # memberships created, default role
    mirror.patch_group(
        session, directory, group, [PatchOp("add", "members", [{"value": users[5].id}])]
    )
    sync.process_pending(session, session.scalar(select(func.max(DirectoryEvent.id))))

    for user in users[:4]:  # one PATCH each, as an IdP pushes them
        mirror.patch_group(
            session, directory, group, [PatchOp("add", "members", [{"value": user.id}])]
        )
    remove = PatchOp("remove", f'members[value eq "{users[3].id}"]')
    mirror.patch_group(session, directory, group, [remove])
    session.flush()
    pending = list(
        session.scalars(
            select(DirectoryEvent.id)
            .where(
                DirectoryEvent.directory_id == directory.id, DirectoryEvent.processed_at.is_(None)
            )
            .order_by(DirectoryEvent.id)
        )
    )
    assert len(pending) == 5
    assert sync.process_pending(session, pending[0]) == 4  # all folded in, once each
    assert all(sync.process_pending(session, e) is None for e in pending)

    roles = {
        m.user_id: [r.role_slug for r in m.roles]
        for m in session.scalars(select(OM).where(OM.organization_id == org.id))
    }
    by_user = {u.id: roles[u.user_id] for u in users}
    assert [by_user[u.id] for u in users] == [[role.slug]] * 3 + [
        ["member"],
        ["member"],
        [role.slug],
    ]
    updated = session.scalars(
        select(Event.data).where(
            Event.organization_id == org.id, Event.event == "organization_membership.updated"
        )
    ).all()
    # users[5] changed in the earlier task; users[3] was added and removed: no change.
    assert sorted(e["user_id"] for e in updated) == sorted(
        u.user_id for u in [*users[:3], users[5]]
    )
