"""A Group PATCH that only adds or removes members, on the event loop (PostgreSQL).

This is what IdPs send most: Okta and Entra ID push each membership change as a PATCH of
``members``, one member or thousands (issue 4 point 10 measures both). The unit of work
(``ScimRoute``) spends most of such a request on thread hops, ORM work and, for large
PATCHes, building each event in Python; here it is one statement on the async pool, in a
transaction of its own, which writes the rows ``mirror.patch_group`` writes:

- the directory's bearer token checked (its hash, as ``directory_for_token`` compares it:
  a rotated token fails at once), the group found in that directory and share-locked
  (``mirror.members_only``);
- the members removed and added set-based as ``members.change`` does (live users of the
  directory only, present ones skipped, ``ON CONFLICT DO NOTHING`` against a concurrent
  PATCH);
- the ``dsync.group.user_added`` / ``user_removed`` events reserved, not written: their
  ids (``ids.reserve_ids``) and one ``PendingMemberEvents`` row with the users added and
  removed; the sequencer writes them before it positions anything
  (``directory.member_events``), so they take their place in the stream as if written
  here, and a 5,000-member PATCH does not render and index 5,000 events in the request;
- the directory events for the worker, ``EVENT_CHUNK`` users each.

The directory events are the worker's messages (no outbox row, no publish per request,
which cost as much as the rest of the request): after the commit the drain task
``idp_sync.directory.sync_pending`` is asked for (coalesced, ``tasks.request_task``;
beat runs it too), and the events' sequencing. Anything else (another
operation, a member replace, a projection asked for, an unknown token, group or
directory type, more than ``MAX_MEMBERS`` members, a closed pooled connection) answers
None with nothing written, and the unit of work answers as it always has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Table, text

from idp_sync.context import current_correlation_id
from idp_sync.db import utcnow
from idp_sync.directory.mirror import EVENT_CHUNK
from idp_sync.directory.models import (
    Directory,
    DirectoryEvent,
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    PendingMemberEvents,
)
from idp_sync.directory.scim.errors import ScimError
from idp_sync.directory.scim.patch import parse_ops, split_members
from idp_sync.directory.services import hash_token
from idp_sync.directory.tasks import request_drain
from idp_sync.ids import new_ids, reserve_ids
from idp_sync.runtime import PostgresReader, Runtime

KIND = "group.members"  # the directory event's kind, as ``mirror._write_group`` writes it
# Members one PATCH may name and still run here. The database does the work, but the body
# is parsed on the event loop (about 1 ms per 1,000 members, docs/benchmarks.md): above
# this, the threadpool, so that no request holds every other one for long.
MAX_MEMBERS = 10_000

_DIRS = cast(Table, Directory.__table__)
_GROUPS = cast(Table, DirectoryGroup.__table__)
_MEMBERS = cast(Table, DirectoryGroupMember.__table__)
_USERS = cast(Table, DirectoryUser.__table__)
_PENDING = cast(Table, PendingMemberEvents.__table__)
_WORK = cast(Table, DirectoryEvent.__table__)


def _change_sql() -> str:
    return (
        f"WITH dir AS (SELECT id FROM {_DIRS.name} "  # noqa: S608
        "WHERE id = :directory_id AND token_hash = :digest), "
        f"grp AS (SELECT g.* FROM {_GROUPS.name} AS g JOIN dir ON g.directory_id = dir.id "
        "WHERE g.id = :group_id AND g.deleted_at IS NULL FOR SHARE OF g), "
        # The ids come as JSON arrays (duplicates are gone already), each looked up by its
        # key: a 1-member PATCH probes one index entry, not the directory's users
        # (``OFFSET 0`` keeps each lookup a lookup, whatever the estimates).
        f"removed AS (DELETE FROM {_MEMBERS.name} AS m USING grp, "
        "jsonb_array_elements_text(CAST(:remove AS jsonb)) AS gone (id), "
        f"LATERAL (SELECT x.ctid FROM {_MEMBERS.name} AS x "
        "WHERE x.group_id = grp.id AND x.user_id = gone.id OFFSET 0) AS hit "
        "WHERE m.ctid = hit.ctid RETURNING m.user_id), "
        f"added AS (INSERT INTO {_MEMBERS.name} (group_id, user_id) "
        "SELECT grp.id, du.id FROM grp "
        "CROSS JOIN jsonb_array_elements_text(CAST(:add AS jsonb)) AS want (id) "
        f"CROSS JOIN LATERAL (SELECT u.id FROM {_USERS.name} AS u WHERE u.id = want.id "
        "AND u.directory_id = grp.directory_id AND u.deleted_at IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {_MEMBERS.name} AS m "
        "WHERE m.group_id = grp.id AND m.user_id = u.id) OFFSET 0) AS du "
        "ORDER BY du.id ON CONFLICT DO NOTHING RETURNING user_id), "
        "touched AS (SELECT t.user_id, t.was_added, "
        "(row_number() OVER (ORDER BY t.user_id) - 1) / :chunk AS chunk "
        "FROM (SELECT user_id, true AS was_added FROM added "
        "UNION ALL SELECT user_id, false FROM removed) AS t), "
        f"reserved AS (INSERT INTO {_PENDING.name} "
        "(id, organization_id, directory_id, group_id, added, removed, created_at) "
        "SELECT :first_event_id, grp.organization_id, grp.directory_id, grp.id, "
        "coalesce((SELECT jsonb_agg(user_id ORDER BY user_id) FROM touched WHERE was_added), "
        "CAST('[]' AS jsonb)), "
        "coalesce((SELECT jsonb_agg(user_id ORDER BY user_id) FROM touched "
        "WHERE NOT was_added), CAST('[]' AS jsonb)), :now "
        "FROM grp WHERE EXISTS (SELECT 1 FROM touched) RETURNING 1), "
        f"work AS (INSERT INTO {_WORK.name} "
        "(id, directory_id, kind, user_ids, group_id, created_at, correlation_id) "
        "SELECT (CAST(:work_ids AS varchar[]))[t.chunk + 1], grp.directory_id, "
        f"'{KIND}', jsonb_agg(t.user_id ORDER BY t.user_id), grp.id, :now, :correlation_id "
        "FROM touched AS t CROSS JOIN grp GROUP BY t.chunk, grp.directory_id, grp.id "
        "ORDER BY t.chunk RETURNING 1) "
        "SELECT (SELECT count(*) FROM grp) AS found, (SELECT count(*) FROM reserved) AS events, "
        "(SELECT count(*) FROM work) AS work"
    )


CHANGE = text(_change_sql())


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
    touched = len(add) + len(remove)  # at most: present members are skipped
    params = {
        "directory_id": directory_id,
        "digest": hash_token(token),
        "group_id": group_id,
        # As JSON: psycopg dumps a list of 5,000 strings as an array in Python, slowly.
        "add": Jsonb(list(add)),
        "remove": Jsonb(list(remove)),
        "chunk": EVENT_CHUNK,
        "first_event_id": reserve_ids("event", touched),
        "work_ids": new_ids("directory_event", -(-touched // EVENT_CHUNK)),
        "now": utcnow(),
        "correlation_id": current_correlation_id(),
    }
    try:
        # Planned for these values each time: PostgreSQL's generic plan of this statement
        # (chosen for prepared statements after five runs) takes twice as long as
        # planning and running it afresh (docs/benchmarks.md).
        rows = await reader.write(CHANGE, params, prepare=False)
    except psycopg.Error:
        # A value the database refuses, a closed connection: rolled back, nothing written.
        return False
    if not rows or not rows[0]["found"]:
        return False  # no such directory, token or group: nothing written
    if rows[0]["work"]:
        request_drain(runtime)
    return True
