"""Users on the event loop (PostgreSQL): the IdPs' lookup and create.

``GET /Users?filter=userName eq "..."``: before it creates a user, an IdP asks whether
the userName exists: Okta sends ``filter=userName eq "..."&startIndex=1&count=100``,
Entra ID ``filter=userName eq "..."`` (issue 4 point 10 measures it). That exact query is
answered here by one statement on the async pool (the bearer token checked in it,
against its hash as ``directory_for_token`` compares it; the user found by the
per-directory index on the lower-cased userName, as ``filters`` compares a "key"
attribute), rendered by the same ``schemas`` functions as the unit of work's list. Any
other query, or a token or directory the statement does not find, answers None: the unit
of work answers it, its errors included.

``POST /Users``: the row ``mirror.create_user`` would insert, its ``dsync.user.created``
event (built by the same serializer) and its directory event (the worker's message, with
no outbox row, drained by ``idp_sync.directory.sync_pending`` as the member PATCH's are),
written by one statement (``CREATE``: data-modifying CTEs, autocommit) only if the token
opens the directory and the userName is free. The process writes one such statement at a
time, for every create that arrived meanwhile (``_Writer``). Anything else (a body the
unit of work would refuse, a taken userName, a concurrent create, a batch the database
refuses) writes nothing for that request and answers None: the unit of work answers, with
its 400 or 409.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from types import SimpleNamespace
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Table, text

from idp_sync.context import current_correlation_id
from idp_sync.directory import serializers as ser
from idp_sync.directory.mirror import new_user_values
from idp_sync.directory.models import Directory, DirectoryEvent, DirectoryUser
from idp_sync.directory.scim import schemas
from idp_sync.directory.scim.errors import ScimError
from idp_sync.directory.services import hash_token
from idp_sync.directory.tasks import request_drain
from idp_sync.events.models import Event
from idp_sync.ids import new_id
from idp_sync.metrics import SCIM_CREATE_BATCH
from idp_sync.runtime import PostgresReader, Runtime

log = logging.getLogger(__name__)

# The filter exactly as IdPs send it; a value with an escape goes the parser's way.
_USERNAME_EQ = re.compile(r'\s*username\s+eq\s+"([^"\\]*)"\s*', re.IGNORECASE)
_PARAMS = frozenset({"filter", "startIndex", "count"})
_USERS = cast(Table, DirectoryUser.__table__)
_COLUMNS = [c.name for c in _USERS.columns]

BY_USER_NAME = text(
    "SELECT d.id AS directory_found, "  # noqa: S608 - names from the tables only
    + ", ".join(f'du."{c}"' for c in _COLUMNS)
    + f" FROM {cast(Table, Directory.__table__).name} AS d "
    f"LEFT JOIN {_USERS.name} AS du ON du.directory_id = d.id "
    "AND du.user_name_key = :key AND du.deleted_at IS NULL "
    "WHERE d.id = :directory_id AND d.token_hash = :digest"
)


def user_name_query(params: dict[str, str]) -> str | None:
    """The lower-cased userName asked for, if the query is exactly that lookup (the first
    page); None otherwise."""
    if not params.keys() <= _PARAMS or params.get("startIndex", "1") != "1":
        return None
    count = params.get("count")
    if count is not None and not (count.isdigit() and int(count) >= 1):
        return None
    found = _USERNAME_EQ.fullmatch(params.get("filter", ""))
    if found is None or found.group(1).lower() == "null":  # "null": the parser's null
        return None
    return found.group(1).lower()


async def find_by_user_name(
    reader: PostgresReader, *, directory_id: str, token: str, key: str, base_url: str
) -> dict[str, Any] | None:
    """The ListResponse (zero or one user), or None if the token does not open
    ``directory_id``."""
    rows = await reader.rows(
        BY_USER_NAME, {"directory_id": directory_id, "digest": hash_token(token), "key": key}
    )
    if not rows:
        return None
    row = rows[0]
    resources = []
    if row["id"] is not None:
        user = SimpleNamespace(**{c: row[c] for c in _COLUMNS})
        resources.append(schemas.user_resource(cast(DirectoryUser, user), base_url))
    return schemas.list_response(resources, len(resources), 1)


# --- POST /Users ------------------------------------------------------------------------

_EVENTS = cast(Table, Event.__table__)
_WORK = cast(Table, DirectoryEvent.__table__)
_INSERTED = (
    "id",
    "directory_id",
    "organization_id",
    "attributes",
    "version",
    "created_at",
    "updated_at",
    "user_name",
    "user_name_key",
    "external_id",
    "display_name",
    "email",
    "first_name",
    "last_name",
    "active",
)

_TYPES = {
    "attributes": "jsonb",
    "version": "integer",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "active": "boolean",
}
_EXTRA = ("digest", "event_id", "event_data", "work_id", "correlation_id")
_RECORD = ", ".join(
    f"{c} {_TYPES.get(c, 'jsonb' if c == 'event_data' else 'varchar')}"
    for c in (*_INSERTED, *_EXTRA)
)

# Every new user of a batch (``_Writer``), as one row each of ``:rows`` (JSON). ``ok``:
# the token opens the directory, of the organization the caller knows it by. A userName
# taken (before, or by another row of the batch, or by a concurrent create) is skipped by
# ``ON CONFLICT DO NOTHING`` on the unique (directory, lower-cased userName) index; its
# event and directory event read ``created``, so none is written without its user.
CREATE = text(
    f"WITH ok AS (SELECT r.* FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r ({_RECORD}) "  # noqa: S608 - names from the tables only
    f"JOIN {cast(Table, Directory.__table__).name} AS d ON d.id = r.directory_id "
    "AND d.token_hash = r.digest AND d.organization_id = r.organization_id), "
    f"created AS (INSERT INTO {_USERS.name} ({', '.join(_INSERTED)}) "
    f"SELECT {', '.join(_INSERTED)} FROM ok ORDER BY user_name_key, id "
    "ON CONFLICT DO NOTHING RETURNING id), "
    f"event AS (INSERT INTO {_EVENTS.name} (id, event, data, organization_id, created_at) "
    "SELECT ok.event_id, 'dsync.user.created', ok.event_data, ok.organization_id, "
    "ok.created_at FROM ok JOIN created USING (id) ORDER BY ok.event_id), "
    f"work AS (INSERT INTO {_WORK.name} "
    "(id, directory_id, kind, user_ids, group_id, created_at, correlation_id) "
    "SELECT ok.work_id, ok.directory_id, 'user.created', jsonb_build_array(ok.id), NULL, "
    "ok.created_at, ok.correlation_id FROM ok JOIN created USING (id) ORDER BY ok.work_id) "
    "SELECT id FROM created"
)
MAX_BATCH = 100  # users per statement


def create_values(
    directory_id: str, organization_id: str, body: dict[str, Any]
) -> SimpleNamespace | None:
    """The row ``mirror.create_user`` would insert for ``body`` (already normalised by
    the directory's adapter), or None where it would refuse the body."""
    try:
        values = new_user_values(directory_id, organization_id, body)
    except ScimError:
        return None
    return SimpleNamespace(**values, deleted_at=None)


async def create_user(
    runtime: Runtime, reader: PostgresReader, *, token: str, user: SimpleNamespace, base_url: str
) -> dict[str, Any] | None:
    """The new User's resource (201), or None if nothing was written: the token does not
    open the directory, the userName is taken, the database refused a value. The
    unit of work then answers, with its error."""
    as_user = cast(DirectoryUser, user)  # the attributes the serializers read
    row = {c: getattr(user, c) for c in _INSERTED}
    row.update(
        created_at=user.created_at.isoformat(),
        updated_at=user.updated_at.isoformat(),
        digest=hash_token(token),
        event_id=new_id("event"),
        event_data=ser.directory_user(as_user),
        work_id=new_id("directory_event"),
        correlation_id=current_correlation_id(),
    )
    writer = _WRITERS.get(reader)
    if writer is None:
        writer = _WRITERS[reader] = _Writer(runtime, reader)
    if not await writer.create(row):
        return None
    return schemas.user_resource(as_user, base_url)


class _Writer:
    """The event loop's creates, one statement at a time: the users whose requests arrive
    while a statement is in flight are written together by the next one (up to
    ``MAX_BATCH``). Eight connections inserting one user each into the same right-most
    pages of thirteen indexes cost PostgreSQL about three times the CPU of the statements
    run one after another (docs/benchmarks.md); a batch also commits once."""

    def __init__(self, runtime: Runtime, reader: PostgresReader) -> None:
        self.runtime, self.reader = runtime, reader
        self.waiting: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self.busy = False

    async def create(self, row: dict[str, Any]) -> bool:
        """Whether the user was written (False: nothing was, for this user)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append((row, done))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        batch: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        try:
            while self.waiting:
                batch = self.waiting[:MAX_BATCH]
                del self.waiting[:MAX_BATCH]
                written = await self._write([row for row, _ in batch])
                for row, done in batch:
                    if not done.done():
                        done.set_result(row["id"] in written)
        finally:
            self.busy = False
            # Only if this task was cancelled (the loop closing): nothing is left waiting.
            for _, done in [*batch, *self.waiting]:
                if not done.done():
                    done.set_result(False)
            self.waiting.clear()

    async def _write(self, rows: list[dict[str, Any]]) -> set[str]:
        SCIM_CREATE_BATCH.observe(len(rows))
        try:
            created = await self.reader.write(CREATE, {"rows": Jsonb(rows)})
        except psycopg.Error:
            # A value the database refuses, a closed connection: each request's unit of
            # work answers.
            return set()
        except Exception:
            log.exception("event-loop user creates failed; the unit of work answers them")
            return set()
        written = {r["id"] for r in created}
        if written:
            request_drain(self.runtime)
        return written


_WRITERS: weakref.WeakKeyDictionary[PostgresReader, _Writer] = weakref.WeakKeyDictionary()
