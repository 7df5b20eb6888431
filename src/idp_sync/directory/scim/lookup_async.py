"""``GET /Users?filter=userName eq "..."`` on the event loop (PostgreSQL).

Before it creates a user, an IdP asks whether the userName exists: Okta sends
``filter=userName eq "..."&startIndex=1&count=100``, Entra ID ``filter=userName eq "..."``
(issue 4 point 10 measures it). That exact query is answered here by one statement on
the async pool (the bearer token checked in it, against its hash as
``directory_for_token`` compares it; the user found by the per-directory index on the
lower-cased userName, as ``filters`` compares a "key" attribute), rendered by the same
``schemas`` functions as the unit of work's list. Any other query, or a token or
directory the statement does not find, answers None: the unit of work answers it, its
errors included.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, text

from idp_sync.directory.models import Directory, DirectoryUser
from idp_sync.directory.scim import schemas
from idp_sync.directory.services import hash_token
from idp_sync.runtime import PostgresReader

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
