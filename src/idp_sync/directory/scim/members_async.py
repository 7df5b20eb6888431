"""A Group PATCH that only adds or removes members, on the event loop (PostgreSQL).

This is what IdPs send most: Okta and Entra ID push each membership change as a PATCH of
``members`` (issue 4 point 10 measures it). The unit of work (``ScimRoute``) spends most
of such a request on thread hops and ORM work; here it is one transaction of two
statements on the async pool, pipelined, with the same rows as ``mirror.patch_group``:

1. ``CHANGE``: the directory's bearer token checked (its hash, as ``directory_for_token``
   compares it, in the statement: a rotated token fails at once), the group found in
   that directory and share-locked (``mirror.members_only``), the members removed and
   added set-based as ``members.change`` does (live users of the directory only, present
   ones skipped, ``ON CONFLICT DO NOTHING`` against a concurrent PATCH), and the touched
   directory users' rows returned for their events;
2. ``RECORD``: the ``dsync.group.user_added`` / ``user_removed`` events (built by the
   serializers, as the unit of work builds them) and the directory events for the worker
   (``EVENT_CHUNK`` users each); then the commit.

The directory events are the worker's messages (no outbox row, no publish per request,
which cost as much as the rest of the request): after the commit the drain task
``idp_sync.directory.sync_pending`` is asked for (coalesced, ``tasks.request_task``;
beat runs it too), and the events' sequencing. Anything else (another
operation, a member replace, a projection asked for, an unknown token, group or
directory type, more than ``MAX_MEMBERS`` members, a closed pooled connection) answers
None with nothing written, and the unit of work answers as it always has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Table, text

from idp_sync.context import current_correlation_id
from idp_sync.db import utcnow
from idp_sync.directory import serializers as ser
from idp_sync.directory.mirror import EVENT_CHUNK
from idp_sync.directory.models import (
    Directory,
    DirectoryEvent,
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
)
from idp_sync.directory.scim.errors import ScimError
from idp_sync.directory.scim.patch import parse_ops, split_members
from idp_sync.directory.services import hash_token
from idp_sync.directory.tasks import DRAIN_TASK
from idp_sync.events.models import Event
from idp_sync.ids import new_ids
from idp_sync.runtime import PostgresReader, Runtime
from idp_sync.tasks import request_sequencing, request_task

KIND = "group.members"  # the directory event's kind, as ``mirror._write_group`` writes it
ADDED, REMOVED = "dsync.group.user_added", "dsync.group.user_removed"
# Members one PATCH may name and still run here: building thousands of events would hold
# the event loop (every other request) for as long; large PATCHes run in the threadpool.
MAX_MEMBERS = 100

_DIRS = cast(Table, Directory.__table__)
_GROUPS = cast(Table, DirectoryGroup.__table__)
_MEMBERS = cast(Table, DirectoryGroupMember.__table__)
_USERS = cast(Table, DirectoryUser.__table__)
_GROUP_COLUMNS = [c.name for c in _GROUPS.columns]
_USER_COLUMNS = [c.name for c in _USERS.columns]


def _change_sql() -> str:
    group = ", ".join(f'grp."{c}"' for c in _GROUP_COLUMNS)
    user = ", ".join(f'du."{c}" AS "u_{c}"' for c in _USER_COLUMNS)
    return (
        f"WITH dir AS (SELECT id, organization_id FROM {_DIRS.name} "  # noqa: S608
        "WHERE id = :directory_id AND token_hash = :digest), "
        f"grp AS (SELECT g.* FROM {_GROUPS.name} AS g JOIN dir ON g.directory_id = dir.id "
        "WHERE g.id = :group_id AND g.deleted_at IS NULL FOR SHARE OF g), "
        f"removed AS (DELETE FROM {_MEMBERS.name} AS m USING grp WHERE m.group_id = grp.id "
        "AND m.user_id = ANY(CAST(:remove AS varchar[])) RETURNING m.user_id), "
        f"added AS (INSERT INTO {_MEMBERS.name} (group_id, user_id) "
        f"SELECT grp.id, du.id FROM grp JOIN {_USERS.name} AS du "
        "ON du.directory_id = grp.directory_id "
        "WHERE du.id = ANY(CAST(:add AS varchar[])) AND du.deleted_at IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {_MEMBERS.name} AS m "
        "WHERE m.group_id = grp.id AND m.user_id = du.id) "
        "ORDER BY du.id ON CONFLICT DO NOTHING RETURNING user_id), "
        "touched AS (SELECT user_id, true AS was_added FROM added "
        "UNION ALL SELECT user_id, false FROM removed) "
        f"SELECT {group}, touched.was_added, {user} FROM grp "
        "LEFT JOIN touched ON true "
        f"LEFT JOIN {_USERS.name} AS du ON du.id = touched.user_id "
        "ORDER BY du.id"
    )


CHANGE = text(_change_sql())

RECORD = text(
    f"WITH events AS (INSERT INTO {cast(Table, Event.__table__).name} "  # noqa: S608
    "(id, event, data, organization_id, created_at) "
    "SELECT e->>'id', e->>'event', e->'data', :organization_id, :now "
    "FROM jsonb_array_elements(CAST(:events AS jsonb)) AS e) "
    f"INSERT INTO {cast(Table, DirectoryEvent.__table__).name} "
    "(id, directory_id, kind, user_ids, group_id, created_at, correlation_id) "
    "SELECT w->>'id', :directory_id, :kind, w->'user_ids', :group_id, :now, :correlation_id "
    "FROM jsonb_array_elements(CAST(:work AS jsonb)) AS w"
)


def member_delta(body: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """(add, remove) of a PATCH body (normalised, ``routing.normalised_body``) that only
    adds or removes members; None for any other body (the unit of work then parses it
    again, and answers with its errors)."""
    try:
        rest, delta = split_members(parse_ops(body))
    except ScimError:
        return None
    if rest or delta.clear or delta.empty or len(delta.add) + len(delta.remove) > MAX_MEMBERS:
        return None
    return list(delta.add), sorted(delta.remove)


async def patch_members(
    runtime: Runtime,
    reader: PostgresReader,
    *,
    directory_id: str,
    group_id: str,
    token: str,
    add: Sequence[str],
    remove: Sequence[str],
) -> bool:
    """Apply the member delta and record it; False if nothing was written (the unit of
    work must answer)."""
    now = utcnow()
    wrote = False
    try:
        async with reader.transaction() as conn:
            cursor = await conn.execute(
                reader.sql(CHANGE),
                {
                    "directory_id": directory_id,
                    "digest": hash_token(token),
                    "group_id": group_id,
                    "add": list(add),
                    "remove": list(remove),
                },
                # Planned for these values each time: PostgreSQL's generic plan of this
                # statement (chosen for prepared statements after five runs) takes twice
                # as long as planning and running it afresh (docs/benchmarks.md).
                prepare=False,
            )
            rows = await cursor.fetchall()
            if not rows:
                return False  # rolled back: no such directory, token or group
            group = SimpleNamespace(**{c: rows[0][c] for c in _GROUP_COLUMNS})
            params = _records(group, rows, now)
            if params is not None:
                await conn.execute(reader.sql(RECORD), params)
                wrote = True
    except psycopg.OperationalError:
        await reader.check()  # a restart or an idle timeout closed pooled connections
        return False
    except psycopg.Error:
        return False  # a value the database refuses, a user deleted meanwhile: rolled back
    if wrote and runtime.celery is not None:
        request_task(runtime.celery, DRAIN_TASK, queue="sync")
        request_sequencing(runtime.celery)
    return True


def _records(
    group: SimpleNamespace, rows: Sequence[Mapping[str, Any]], now: dt.datetime
) -> dict[str, Any] | None:
    """``RECORD``'s parameters; None if the PATCH changed nothing (adding present
    members, removing absent ones)."""
    touched = [r for r in rows if r["was_added"] is not None]
    if not touched:
        return None
    as_group = cast(DirectoryGroup, group)  # a row: the attributes the serializers read
    group_data = ser.directory_group(as_group)
    events: list[dict[str, Any]] = []
    for name, was_added in ((ADDED, True), (REMOVED, False)):
        users = [_user(r) for r in touched if r["was_added"] is was_added]
        ids = new_ids("event", len(users))
        for event_id, user in zip(ids, users, strict=True):
            data = ser.membership_event(cast(DirectoryUser, user), as_group, group_data)
            events.append({"id": event_id, "event": name, "data": data})
    user_ids = sorted(r["u_id"] for r in touched)
    chunks = [user_ids[i : i + EVENT_CHUNK] for i in range(0, len(user_ids), EVENT_CHUNK)]
    work_ids = new_ids("directory_event", len(chunks))
    return {
        "organization_id": group.organization_id,
        "directory_id": group.directory_id,
        "group_id": group.id,
        "kind": KIND,
        "correlation_id": current_correlation_id(),
        "now": now,
        "events": Jsonb(events),
        "work": Jsonb([{"id": w, "user_ids": c} for w, c in zip(work_ids, chunks, strict=True)]),
    }


def _user(row: Mapping[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(**{c: row[f"u_{c}"] for c in _USER_COLUMNS})
