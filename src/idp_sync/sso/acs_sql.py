"""The ACS's statements: what a sign-in reads and writes, in as few round trips as the
dialect allows, each a constant compiled once.

A sign-in is two statements and the commit on PostgreSQL, when the connection's settings
are cached:

1. ``once``: the assertion id into the replay table and the answered AuthnRequest out of
   the outstanding ones (two data-modifying CTEs), the configuration token
   (``config_cache``: ``flow.accept`` validated the response against what is cached,
   and starts again if the token changed), and the profile with its membership's inputs
   (``_membership_reads``);
2. ``write``: the profile upserted, the login row and the one-use code.

SQLite has no data-modifying CTEs: the same writes go one statement each. Both run in
the tests (the SSO suite on PostgreSQL, ``tests/e2e/test_embedded_sqlite.py``).

Names in the SQL text come from the tables only; every value is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Connection,
    Select,
    Table,
    TextClause,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    null,
    select,
    text,
    true,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from idp_sync.db import UTCDateTime
from idp_sync.directory.models import DirectoryUser
from idp_sync.memberships.models import MembershipApiRole
from idp_sync.memberships.models import OrganizationMembership as OM
from idp_sync.sso.models import (
    SamlAssertionReplay,
    SamlAuthnRequest,
    SsoAuthorizationCode,
    SsoLoginEvent,
    SsoProfile,
)
from idp_sync.users.models import User

PROFILES = cast(Table, SsoProfile.__table__)
LOGINS = cast(Table, SsoLoginEvent.__table__)
CODES = cast(Table, SsoAuthorizationCode.__table__)
REQUESTS = cast(Table, SamlAuthnRequest.__table__)
REPLAYS = cast(Table, SamlAssertionReplay.__table__)

# Profile columns a sign-in writes over; with its groups, unless the IdP sent the Entra
# groups overage claim instead of them.
SIGN_IN_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "name",
    "raw_attributes",
    "groups_known",
    "roles",
    "last_sign_in_at",
    "updated_at",
)
GROUP_COLUMNS = ("groups", "groups_received_at")
_INSERTED_ONLY = ("id", "connection_id", "organization_id", "idp_id", "created_at")
# ``once``'s parameters: the replay row's values, the profile's lookup, and request_id.
REPLAY_KEYS = ("assertion_id", "connection_id", "not_on_or_after", "created_at")
LOOKUP_KEYS = ("organization_id", "email", "connection_id", "idp_id")
_LOGIN_COLUMNS = ("ip_address", "user_agent", "correlation_id")
_CODE_COLUMNS = ("code_hash", "redirect_uri", "expires_at")


# --- text building blocks (dialect-neutral SQL, typed parameters) ----------------------


def _names(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _params(columns: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(f":{prefix}{c}" for c in columns)


def _typed(table: Table, columns: tuple[str, ...], prefix: str = "") -> list[Any]:
    return [bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns]


def _insert_sql(table: Table, columns: tuple[str, ...], conflict: str, then: str) -> str:
    """``INSERT .. ON CONFLICT ..``, the same text on PostgreSQL and SQLite. (SQLAlchemy
    does not cache the compiled form of its dialect ``on_conflict_*()`` constructs: built
    that way, each sign-in compiled its statements again.)"""
    return (
        f"INSERT INTO {table.name} ({_names(columns)}) "  # noqa: S608
        f"VALUES ({_params(columns)}) ON CONFLICT ({conflict}) {then}"
    )


def _profile_upsert_sql(updated: tuple[str, ...]) -> str:
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in updated)
    columns = _INSERTED_ONLY + SIGN_IN_COLUMNS + GROUP_COLUMNS
    return _insert_sql(PROFILES, columns, "connection_id, idp_id", f"DO UPDATE SET {sets}")


_PROFILE_PARAMS = _typed(PROFILES, _INSERTED_ONLY + SIGN_IN_COLUMNS + GROUP_COLUMNS)
_REPLAY_SQL = _insert_sql(REPLAYS, REPLAY_KEYS, "assertion_id", "DO NOTHING")


# --- 2. once: the replay table and the AuthnRequest ------------------------------------

_REPLAY = text(f"{_REPLAY_SQL} RETURNING assertion_id").bindparams(*_typed(REPLAYS, REPLAY_KEYS))
_CONSUME = (
    delete(REQUESTS)
    .where(REQUESTS.c.id == bindparam("request_id"))
    .returning(
        REQUESTS.c.connection_id, REQUESTS.c.redirect_uri, REQUESTS.c.state, REQUESTS.c.expires_at
    )
)
_TOKEN = text("SELECT token FROM config_version WHERE id = 1")


# --- 3. known: the profile and its membership's inputs ---------------------------------


def _membership_reads() -> tuple[Select[Any], Select[Any]]:
    """For a known profile and for a first sign-in: the membership's id, its API roles (in
    order) and whether a live directory user links it (then its directory input is
    loaded too). The membership is that of the profile's user in the organization, else
    (no profile yet, or the worker has not linked it) of the user with the sign-in's
    email, as ``signin._memberships_inputs`` finds it. For a known profile, the same
    statement returns its last known groups."""
    om = cast(Table, OM.__table__)
    api = cast(Table, MembershipApiRole.__table__)
    du = cast(Table, DirectoryUser.__table__)
    users = cast(Table, User.__table__)
    linked = (
        select(du.c.id)
        .where(
            du.c.user_id == om.c.user_id,
            du.c.organization_id == om.c.organization_id,
            du.c.deleted_at.is_(None),
            du.c.active.is_(True),
        )
        .exists()
        .label("linked")
    )
    by_email = select(users.c.id).where(users.c.email == bindparam("email")).scalar_subquery()
    in_org = om.c.organization_id == bindparam("organization_id")
    profile = (
        select(true().label("profile_known"), PROFILES.c.groups)
        .add_columns(om.c.id, api.c.role_slug, linked, api.c.position)
        .select_from(PROFILES)
        .outerjoin(om, and_(in_org, om.c.user_id == func.coalesce(PROFILES.c.user_id, by_email)))
        .outerjoin(api, api.c.membership_id == om.c.id)
        .where(
            PROFILES.c.connection_id == bindparam("connection_id"),
            PROFILES.c.idp_id == bindparam("idp_id"),
        )
        .order_by(api.c.position)
    )
    first = (
        select(
            false().label("profile_known"), cast_(null(), PROFILES.c.groups.type).label("groups")
        )
        .add_columns(om.c.id, api.c.role_slug, linked, api.c.position)
        .select_from(om)
        .outerjoin(api, api.c.membership_id == om.c.id)
        .where(in_org, om.c.user_id == by_email)
        .order_by(api.c.position)
    )
    return profile, first


_KNOWN_PROFILE, _FIRST_SIGN_IN = _membership_reads()


def _named(statement: Select[Any]) -> str:
    """``statement`` as PostgreSQL text with ``:name`` parameters, to sit in a CTE."""
    return str(statement.compile(dialect=postgresql.dialect(paramstyle="named")))  # type: ignore[no-untyped-call]


_INPUT_COLUMNS = "profile_known, groups, id, role_slug, linked, position"
ONCE_PG = (
    text(
        f"WITH replay AS ({_REPLAY_SQL} RETURNING assertion_id), "  # noqa: S608
        f"request AS (DELETE FROM {REQUESTS.name} WHERE id = :request_id "
        "RETURNING connection_id, redirect_uri, state, expires_at), "
        f"known AS ({_named(_KNOWN_PROFILE)}), "
        f"first AS ({_named(_FIRST_SIGN_IN)}), "
        f"inputs AS (SELECT {_INPUT_COLUMNS} FROM known UNION ALL "
        f"SELECT {_INPUT_COLUMNS} FROM first WHERE NOT EXISTS (SELECT 1 FROM known)) "
        "SELECT (SELECT count(*) FROM replay) AS stored, "
        "request.connection_id AS request_connection_id, request.redirect_uri, "
        "request.state, request.expires_at, "
        "(SELECT token FROM config_version WHERE id = 1) AS token, "
        "inputs.profile_known, inputs.groups, inputs.id, inputs.role_slug, inputs.linked "
        "FROM (SELECT 1) AS one LEFT JOIN request ON true LEFT JOIN inputs ON true "
        "ORDER BY inputs.position"
    )
    .bindparams(*_typed(REPLAYS, REPLAY_KEYS), bindparam("request_id", type_=REQUESTS.c.id.type))
    .columns(expires_at=UTCDateTime())
)


class Request(NamedTuple):
    """The AuthnRequest a response answers, as it was taken out."""

    connection_id: str
    redirect_uri: str
    state: str | None
    expires_at: dt.datetime


class Known(NamedTuple):
    """A row of ``_membership_reads``."""

    profile_known: bool
    groups: list[str] | None  # the profile's last known groups
    id: str | None  # the membership's
    role_slug: str | None  # one of its API roles, in order
    linked: bool  # a live directory user links the membership


class Once(NamedTuple):
    stored: bool  # the assertion id was new (else: a replay)
    request: Request | None  # the answered AuthnRequest, if there was one
    token: int | None  # the configuration token as the statement saw it
    known: list[Known]  # one per API role of the membership; none for a first sign-in
    # of a user with no membership

    @classmethod
    def from_pg_rows(cls, rows: Sequence[Mapping[Any, Any]]) -> Once:
        """From ``ONCE_PG``'s rows, whichever driver interface read them."""
        head = rows[0]
        request = None
        if head["request_connection_id"] is not None:
            request = Request(
                head["request_connection_id"],
                head["redirect_uri"],
                head["state"],
                head["expires_at"],
            )
        known = [_known(r) for r in rows if r["profile_known"] is not None]
        return cls(bool(head["stored"]), request, head["token"], known)


def _known(row: Mapping[Any, Any]) -> Known:
    return Known(
        row["profile_known"], row["groups"], row["id"], row["role_slug"], bool(row["linked"])
    )


def once(conn: Connection, params: Mapping[str, Any]) -> Once:
    """Remember the assertion id (the replay row's values: ``REPLAY_KEYS``), take the
    answered AuthnRequest ``request_id`` out of the outstanding ones, read the
    configuration token (``config_cache``) and the sign-in's profile and membership
    inputs (``LOOKUP_KEYS``). A concurrent use of the same assertion id waits on the
    unique index for the other transaction: if that one commits, this one is the replay.
    Nothing is kept if the caller then refuses: the transaction rolls back."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(ONCE_PG, dict(params)).all()
        return Once.from_pg_rows([row._mapping for row in rows])
    stored = conn.execute(_REPLAY, {k: params[k] for k in REPLAY_KEYS}).first() is not None
    request = None
    if params["request_id"] is not None:
        found = conn.execute(_CONSUME, {"request_id": params["request_id"]}).first()
        request = Request(*found) if found is not None else None
    token = conn.execute(_TOKEN).scalar()
    lookup = {k: params[k] for k in LOOKUP_KEYS}
    rows = conn.execute(_KNOWN_PROFILE, lookup).all()
    if not rows:
        rows = conn.execute(_FIRST_SIGN_IN, lookup).all()
    return Once(stored, request, token, [_known(row._mapping) for row in rows])


# --- 4. write: profile, login row, code ------------------------------------------------


def _upserts() -> tuple[TextClause, TextClause]:
    return tuple(  # type: ignore[return-value]
        text(f"{_profile_upsert_sql(updated)} RETURNING id").bindparams(*_PROFILE_PARAMS)
        for updated in (SIGN_IN_COLUMNS + GROUP_COLUMNS, SIGN_IN_COLUMNS)
    )


def _writes_pg() -> tuple[TextClause, TextClause]:
    """The profile, the login row (the worker's work) and the code in one statement. The
    code's profile is given without its id, which the upsert decides (the row of an
    earlier sign-in, or the new one): ``jsonb_set`` puts it in."""
    login = ("id", "profile_id", "connection_id", *_LOGIN_COLUMNS, "created_at")
    code = ("code_hash", "profile_id", "redirect_uri", "profile", "expires_at", "created_at")
    statements = []
    for updated in (SIGN_IN_COLUMNS + GROUP_COLUMNS, SIGN_IN_COLUMNS):
        sql = (
            f"WITH profile AS ({_profile_upsert_sql(updated)} RETURNING id), "  # noqa: S608
            f"login AS (INSERT INTO {LOGINS.name} ({_names(login)}) "
            "SELECT :login_id, profile.id, :connection_id, "
            f"{_params(_LOGIN_COLUMNS, 'login_')}, :created_at FROM profile) "
            f"INSERT INTO {CODES.name} ({_names(code)}) "
            "SELECT :code_hash, profile.id, :code_redirect_uri, "
            "jsonb_set(:code_profile, '{id}', to_jsonb(profile.id)), "
            ":code_expires_at, :created_at FROM profile RETURNING profile_id"
        )
        statements.append(
            text(sql).bindparams(
                *_PROFILE_PARAMS,
                bindparam("login_id", type_=LOGINS.c.id.type),
                *_typed(LOGINS, _LOGIN_COLUMNS, "login_"),
                bindparam("code_hash", type_=CODES.c.code_hash.type),
                bindparam("code_redirect_uri", type_=CODES.c.redirect_uri.type),
                bindparam("code_profile", type_=JSONB()),
                bindparam("code_expires_at", type_=CODES.c.expires_at.type),
            )
        )
    return statements[0], statements[1]


_PROFILE_UPSERT, _PROFILE_UPSERT_KEEPING_GROUPS = _upserts()
WRITE_PG = _writes_pg()  # [0]: with the sign-in's groups; [1]: keeping the stored ones


def write(
    conn: Connection,
    profile: dict[str, Any],
    login: dict[str, Any],
    code: dict[str, Any],
    code_profile: dict[str, Any],
) -> str:
    """Upsert the profile (``profile``: every column of the upsert; ``groups_known`` false
    keeps the stored groups), insert the login row and the code; returns the profile's
    id. Two first sign-ins at once for the same person (two tabs, a retry) do not collide
    on the unique key: the second waits for the first transaction, then updates the one
    row. ``code_profile`` is the code's Profile; its ``id`` is set here."""
    keep_groups = not profile["groups_known"]
    if conn.dialect.name == "postgresql":
        statement, params = write_pg(profile, login, code, code_profile)
        profile_id: str = conn.execute(statement, params).scalar_one()
    else:
        statement = _PROFILE_UPSERT_KEEPING_GROUPS if keep_groups else _PROFILE_UPSERT
        profile_id = conn.execute(statement, profile).scalar_one()
        conn.execute(
            insert(LOGINS),
            {
                **login,
                "profile_id": profile_id,
                "connection_id": profile["connection_id"],
                "created_at": profile["created_at"],
            },
        )
        conn.execute(
            insert(CODES),
            {
                **code,
                "profile_id": profile_id,
                "profile": {**code_profile, "id": profile_id},
                "created_at": profile["created_at"],
            },
        )
    code_profile["id"] = profile_id
    return profile_id


def write_pg(
    profile: dict[str, Any],
    login: dict[str, Any],
    code: dict[str, Any],
    code_profile: dict[str, Any],
) -> tuple[TextClause, dict[str, Any]]:
    """``write``'s one statement on PostgreSQL and its parameters."""
    params = {
        **profile,
        **{f"login_{k}": login[k] for k in _LOGIN_COLUMNS},
        "login_id": login["id"],
        "code_hash": code["code_hash"],
        "code_redirect_uri": code["redirect_uri"],
        "code_expires_at": code["expires_at"],
        "code_profile": code_profile,
    }
    return WRITE_PG[0 if profile["groups_known"] else 1], params


def keep_until(not_on_or_after: dt.datetime, skew_seconds: int) -> dt.datetime:
    """How long an assertion id stays in the replay table: past its NotOnOrAfter by the
    clock skew the time check allows."""
    return not_on_or_after + dt.timedelta(seconds=skew_seconds)
