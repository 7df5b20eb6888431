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
in one statement (``CREATE``: data-modifying CTEs, autocommit) that writes only if the
token opens the directory and the userName is free. Anything else (a body the unit of
work would refuse, a taken userName, a concurrent create) writes nothing and answers
None: the unit of work answers, with its 400 or 409.
"""

from __future__ import annotations

import re
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
from idp_sync.directory.tasks import DRAIN_TASK
from idp_sync.events.models import Event
from idp_sync.ids import new_id
from idp_sync.runtime import PostgresReader, Runtime
from idp_sync.tasks import request_sequencing, request_task

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

# ``dir``: the token opens the directory, of the organization the caller knows it by.
# ``ok``: the userName is free (a concurrent create of it loses on the unique index).
# Every write reads ``created``, so none happens without the user.
CREATE = text(
    f"WITH dir AS (SELECT id FROM {cast(Table, Directory.__table__).name} "  # noqa: S608
    "WHERE id = :directory_id AND token_hash = :digest "
    "AND organization_id = :organization_id), "
    "ok AS (SELECT 1 AS one FROM dir WHERE NOT EXISTS "
    f"(SELECT 1 FROM {_USERS.name} WHERE directory_id = :directory_id "
    "AND user_name_key = :user_name_key)), "
    f"created AS (INSERT INTO {_USERS.name} ({', '.join(_INSERTED)}) "
    "SELECT "
    + ", ".join(f"CAST(:{c} AS jsonb)" if c == "attributes" else f":{c}" for c in _INSERTED)
    + " FROM ok RETURNING id), "  # noqa: S608 - names from the tables only
    f"event AS (INSERT INTO {_EVENTS.name} (id, event, data, organization_id, created_at) "
    "SELECT :event_id, 'dsync.user.created', CAST(:event_data AS jsonb), :organization_id, "
    ":created_at FROM created), "
    f"work AS (INSERT INTO {_WORK.name} "
    "(id, directory_id, kind, user_ids, group_id, created_at, correlation_id) "
    "SELECT :work_id, :directory_id, 'user.created', CAST(:work_users AS jsonb), NULL, "
    ":created_at, :correlation_id FROM created) "
    "SELECT (SELECT count(*) FROM dir) AS directory_found, "
    "(SELECT count(*) FROM created) AS created"
)


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
    params = {c: getattr(user, c) for c in _INSERTED}
    params["attributes"] = Jsonb(user.attributes)
    params.update(
        digest=hash_token(token),
        event_id=new_id("event"),
        event_data=Jsonb(ser.directory_user(as_user)),
        work_id=new_id("directory_event"),
        work_users=Jsonb([user.id]),
        correlation_id=current_correlation_id(),
    )
    try:
        rows = await reader.write(CREATE, params)
    except psycopg.OperationalError:
        await reader.check()  # a restart or an idle timeout closed pooled connections
        return None
    except psycopg.Error:
        return None  # a concurrent create of the userName, a value the database refuses
    if not rows[0]["created"]:
        return None
    if runtime.celery is not None:
        request_task(runtime.celery, DRAIN_TASK, queue="sync")
        request_sequencing(runtime.celery)
    return schemas.user_resource(as_user, base_url)
