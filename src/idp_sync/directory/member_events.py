"""The events of member PATCHes taken on the event loop, written by the sequencer.

A member PATCH on the event loop (``scim/members_async.py``) commits its members, the
worker's directory events and one ``PendingMemberEvents`` row: the users it added and
removed, and the first of the event ids it reserved for them. Writing 5,000 rendered
events in the request would cost most of a 5,000-member PATCH (docs/benchmarks.md).

``write_pending`` writes them: one ``dsync.group.user_added`` / ``user_removed`` per user,
with the reserved ids (additions, then removals, each in user id order, as
``members.change`` numbers them), the request's time, and the data the serializers give
(``directory_user_json_sql``, ``directory_group_json_sql``). It runs in the sequencer's
transaction, under its lock, before any event is positioned: an event reserved before a
later change was written is positioned before it, exactly as if the request had written
it. The users and the group are rendered as they are when the sequencer runs (within
milliseconds of the request as a rule; ``docs/architecture.md``).
"""

from __future__ import annotations

import json
from typing import cast

from sqlalchemy import Table, delete, select, text
from sqlalchemy.orm import Session

from idp_sync.db import is_postgres
from idp_sync.directory import serializers as ser
from idp_sync.directory.models import DirectoryGroup, DirectoryUser, PendingMemberEvents
from idp_sync.events.models import Event
from idp_sync.ids import ids_from

ADDED, REMOVED = "dsync.group.user_added", "dsync.group.user_removed"
_PENDING = cast(Table, PendingMemberEvents.__table__)

# ``:ids``: each reservation's first id -> the ids it reserved (``ids_from``), parsed once.
WRITE = text(
    "WITH reserved AS MATERIALIZED (SELECT key AS first, value AS ids "  # noqa: S608
    "FROM jsonb_each(CAST(:ids AS jsonb))) "
    f"INSERT INTO {cast(Table, Event.__table__).name} "
    "(id, event, data, organization_id, created_at) "
    "SELECT reserved.ids ->> CAST(t.n - 1 AS integer), "
    f"CASE WHEN t.was_added THEN '{ADDED}' ELSE '{REMOVED}' END, "
    "jsonb_build_object('directory_id', g.directory_id, "
    f"'user', {ser.directory_user_json_sql('du')}, "
    f"'group', {ser.directory_group_json_sql('g')}), "
    "r.organization_id, r.created_at "
    f"FROM reserved JOIN {_PENDING.name} AS r ON r.id = reserved.first "
    f"JOIN {cast(Table, DirectoryGroup.__table__).name} AS g ON g.id = r.group_id "
    "CROSS JOIN LATERAL ("
    "SELECT a.value AS user_id, true AS was_added, a.n "
    "FROM jsonb_array_elements_text(r.added) WITH ORDINALITY AS a (value, n) "
    "UNION ALL SELECT b.value, false, jsonb_array_length(r.added) + b.n "
    "FROM jsonb_array_elements_text(r.removed) WITH ORDINALITY AS b (value, n)) AS t "
    f"JOIN {cast(Table, DirectoryUser.__table__).name} AS du ON du.id = t.user_id"
)


def write_pending(session: Session) -> int:
    """Write every reserved member event (PostgreSQL; nothing reserves them elsewhere), in
    the caller's transaction; returns how many."""
    if not is_postgres(session):
        return 0
    pending = session.execute(
        select(
            PendingMemberEvents.id,
            text("jsonb_array_length(added) + jsonb_array_length(removed) AS count"),
        )
        .order_by(PendingMemberEvents.id)
        .with_for_update()
    ).all()
    if not pending:
        return 0
    # One statement for every reservation (each row's ids under its first id), not one
    # per PATCH: a burst of one-member PATCHes between two runs is thousands of rows.
    ids = {first: ids_from(first, count) for first, count in pending}
    written: int = session.execute(WRITE, {"ids": json.dumps(ids)}).rowcount  # type: ignore[attr-defined]
    session.execute(delete(PendingMemberEvents).where(PendingMemberEvents.id.in_(list(ids))))
    return written
