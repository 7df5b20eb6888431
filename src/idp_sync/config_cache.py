"""Per-process cache of configuration that hot paths read at every request.

What a sign-in needs besides its own rows (the connection's settings and certificates,
its group mappings, the role catalog, the registered redirect URIs) changes rarely and is
read constantly. Every write to the tables it comes from changes one row,
``config_version``, through database triggers (migration 0007), whatever wrote it: an
API call, a job's Core statement, a cascade, psql. A request reads that row first (one
indexed read) and uses what is cached under the same token; anything else is loaded
again in the request's own transaction and kept under that token.

The token is read before the data it labels, so cached data is never older than its
token: a change committed between the two reads gives newer data under the older token,
which the next request, seeing the new token, loads again. Values must be immutable
(frozen dataclasses, tuples): they are shared between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Column, Connection, Integer, Table, select

from idp_sync.db import Base

T = TypeVar("T")

# Keep in step with migration 0007's WATCHED_TABLES (tests/test_config_cache.py checks
# that each has its triggers on both dialects).
WATCHED_TABLES = (
    "environment_settings",
    "roles",
    "organization_authorization_settings",
    "sso_connections",
    "sso_idp_signing_certs",
    "sso_group_role_mappings",
    "sso_redirect_uris",
)

config_version = Table(
    "config_version",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("token", BigInteger, nullable=False),
)

_TOKEN = select(config_version.c.token).where(config_version.c.id == 1)
MAX_ENTRIES = 10_000


class ConfigCache:
    """Values keyed by anything hashable, valid while the configuration token is unchanged.

    The token and its values are one tuple, replaced whole: a reader takes both in one
    read, so it never pairs a token with values kept under another one."""

    def __init__(self) -> None:
        self._state: tuple[int | None, dict[Hashable, Any]] = (None, {})
        self._lock = threading.Lock()

    def token(self, conn: Connection) -> int | None:
        """The current token, read in ``conn``'s transaction; None if the row is missing
        (then nothing is cached)."""
        token: int | None = conn.execute(_TOKEN).scalar()
        return token

    def get(self, token: int | None, key: Hashable, load: Callable[[], T]) -> T:
        """The value cached for ``key`` under ``token``, else ``load()`` kept under it."""
        if token is None:
            return load()
        kept, values = self._state
        if kept == token and key in values:
            hit: T = values[key]
            return hit
        value = load()
        with self._lock:
            kept, values = self._state
            if kept != token or len(values) >= MAX_ENTRIES:
                # Another token: what was kept belongs to an older (or, briefly, a newer)
                # configuration. Start again rather than keep both.
                values = {}
            self._state = (token, {**values, key: value})
        return value

    def peek(self, key: Hashable) -> tuple[int, Any] | None:
        """The token and the value cached for ``key`` under it, if any: for a caller that
        checks the token later in its transaction, and starts again if it changed."""
        token, values = self._state
        if token is None or key not in values:
            return None
        return token, values[key]

    def clear(self) -> None:
        with self._lock:
            self._state = (None, {})
