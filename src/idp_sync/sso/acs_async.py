"""The ACS on the event loop: the common sign-in, on PostgreSQL, with no thread.

``flow.accept`` runs a sign-in in a thread of its own, on the sync engine. For the
common case (PostgreSQL; the connection's settings and the organization's roles cached;
a membership not linked to a directory user), this runs the same two statements
(``acs_sql``: ``once`` and ``write``) on the runtime's async pool, in one transaction in
pipeline mode, with the same checks and rows (``flow.decide``, ``flow.resolve_roles``,
``flow.SignInRows``, ``flow.finish``). Thread hops and the GIL handoffs around every
round trip of a threaded sign-in cost more CPU than its statements (docs/benchmarks.md).

Anything else answers ``None`` before or with a rolled-back transaction, and the caller
runs ``flow.accept``: a configuration token other than the one the settings were cached
under, a response the cached settings refuse (judged again there, against the current
configuration), a directory-linked membership, a pooled connection the server closed.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from idp_sync.db import utcnow
from idp_sync.runtime import PostgresReader, Runtime
from idp_sync.sso import acs_sql, flow, saml
from idp_sync.sso.saml import SamlRefusal

# Parameters psycopg gets as JSON text, cast to jsonb by the statements.
_JSON = frozenset({"raw_attributes", "roles", "groups", "code_profile"})


class _Fallback(Exception):
    """Not the common case after all: the transaction rolls back; ``flow.accept`` runs."""


async def accept(
    runtime: Runtime,
    connection_id: str,
    posted: str,
    *,
    ip_address: str | None,
    user_agent: str | None,
) -> flow.Accepted | None:
    """The sign-in, or None if it must run as ``flow.accept``. ``SamlRefusal`` as there."""
    cache = runtime.config_cache
    cached = cache.peek(("sso_connection", connection_id))
    if cached is None or cached[1] is None or cached[1].state != "active":
        return None
    token, config = cached
    roles_cached = cache.peek(("org_roles", config.organization_id))
    if roles_cached is None or roles_cached[0] != token:
        return None
    state_of_org = roles_cached[1]
    reader = runtime.reader()
    if not isinstance(reader, PostgresReader):
        return None
    now = utcnow()
    try:
        assertion = saml.validate(posted, config.sp, now)
    except SamlRefusal:
        return None  # judged again against the current configuration
    params = flow.once_params(runtime.settings, config, assertion, now)
    try:
        async with reader.transaction() as conn:
            cursor = await conn.execute(reader.sql(acs_sql.ONCE_PG), params)
            done = acs_sql.Once.from_pg_rows(await cursor.fetchall())
            if done.token != token or (done.known and done.known[0].linked):
                raise _Fallback
            decided = flow.decide(config, assertion, done, now)
            roles = flow.resolve_roles(config, state_of_org, done.known, decided.groups, None)
            made = flow.SignInRows.make(config, decided, roles, now, ip_address, user_agent)
            write, values = acs_sql.write_pg(made.profile, made.login, made.code, made.code_profile)
            cursor = await conn.execute(reader.sql(write), _as_json(values))
            profile_id = (await cursor.fetchone())["profile_id"]
    except _Fallback:
        return None
    except psycopg.OperationalError:  # a restart or an idle timeout: the thread answers
        return None
    made.code_profile["id"] = profile_id
    return flow.finish(runtime, decided, made)


def _as_json(params: dict[str, Any]) -> dict[str, Any]:
    """psycopg gets JSON values as text; the statement casts them to jsonb."""
    return {k: json.dumps(v) if k in _JSON else v for k, v in params.items()}
