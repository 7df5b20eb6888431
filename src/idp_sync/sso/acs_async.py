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
from typing import Any, NamedTuple

import psycopg

from idp_sync.db import utcnow
from idp_sync.runtime import PostgresReader, Runtime
from idp_sync.sso import acs_sql, flow, saml
from idp_sync.sso.attributes import read_profile
from idp_sync.sso.saml import SamlRefusal

# Parameters psycopg gets as JSON text, cast to jsonb by the statements.
_JSON = frozenset({"raw_attributes", "roles", "groups", "code_profile"})


class _Known(NamedTuple):
    profile_known: bool
    groups: list[str] | None
    id: str | None
    role_slug: str | None
    linked: bool


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
    signed = read_profile(assertion, config.connection_type, config.attribute_maps)
    params = {
        "assertion_id": assertion.assertion_id,
        "connection_id": config.id,
        "not_on_or_after": acs_sql.keep_until(
            assertion.not_on_or_after, runtime.settings.saml_clock_skew_seconds
        ),
        "created_at": now,
        "request_id": assertion.in_response_to,
        "organization_id": config.organization_id,
        "idp_id": signed.idp_id,
        "email": signed.email or "",
    }
    try:
        async with reader.transaction() as conn:
            cursor = await conn.execute(reader.sql(acs_sql.ONCE_PG), params)
            rows = await cursor.fetchall()
            head = rows[0]
            known = [_known(r) for r in rows if r["profile_known"] is not None]
            if head["token"] != token or (known and known[0].linked):
                raise _Fallback
            request = None
            if head["request_connection_id"] is not None:
                request = acs_sql.Request(
                    head["request_connection_id"],
                    head["redirect_uri"],
                    head["state"],
                    head["expires_at"],
                )
            stored = bool(head["stored"])
            done = acs_sql.Once(stored, request, head["token"], known)  # type: ignore[arg-type]
            decided = flow.decide(config, assertion, done, now)
            roles = flow.resolve_roles(config, state_of_org, known, decided.groups, None)
            made = flow.SignInRows.make(config, decided, roles, now, ip_address, user_agent)
            write = acs_sql.WRITE_PG[0 if made.profile["groups_known"] else 1]
            cursor = await conn.execute(reader.sql(write), _write_params(made))
            profile_id = (await cursor.fetchone())["profile_id"]
    except _Fallback:
        return None
    except psycopg.OperationalError:
        await reader.check()  # a restart or an idle timeout closed pooled connections
        return None
    made.code_profile["id"] = profile_id
    return flow.finish(runtime, decided, made)


def _known(row: dict[str, Any]) -> _Known:
    return _Known(
        row["profile_known"], row["groups"], row["id"], row["role_slug"], bool(row["linked"])
    )


def _write_params(made: flow.SignInRows) -> dict[str, Any]:
    params: dict[str, Any] = {
        **made.profile,
        **{f"login_{k}": v for k, v in made.login.items() if k != "id"},
        "login_id": made.login["id"],
        "code_hash": made.code["code_hash"],
        "code_redirect_uri": made.code["redirect_uri"],
        "code_expires_at": made.code["expires_at"],
        "code_profile": made.code_profile,
    }
    return {k: json.dumps(v) if k in _JSON else v for k, v in params.items()}
