"""The WorkOS SSO flow over SAML (issue 5 point 2): authorize -> IdP -> ACS -> code -> token.

* ``authorize``: checks client id and a registered redirect URI before any redirect, then
  remembers an AuthnRequest and answers with the HTTP-Redirect binding URL (SAML bindings
  §3.4: DEFLATE, base64, URL-encoded ``SAMLRequest`` and ``RelayState``).
* ``accept``: the ACS. Validates (``saml``), then checks what needs the database:
  InResponseTo against an outstanding AuthnRequest of this connection (consumed), or
  IdP-initiated where allowed; the assertion id in the replay table. Then the profile,
  its role(s) resolved at once, a login event for the worker, and a one-use code.
* ``exchange`` / ``profile_for``: ``POST /sso/token`` and ``GET /sso/profile``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import zlib
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from sqlalchemy import Connection as SAConnection
from sqlalchemy import (
    Row,
    Select,
    Table,
    TextClause,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    text,
)
from sqlalchemy.orm import Session

from idp_sync.config import Settings
from idp_sync.context import current_correlation_id
from idp_sync.db import connect_unpinged, utcnow
from idp_sync.directory.models import DirectoryUser
from idp_sync.errors import BadRequest, NotFound, Unauthorized
from idp_sync.ids import new_id
from idp_sync.memberships.models import MembershipApiRole
from idp_sync.memberships.models import OrganizationMembership as OM
from idp_sync.memberships.recompute import RoleCatalog
from idp_sync.rbac.resolver import GroupMapping, IdpInput, MembershipInput, RoleState, resolve
from idp_sync.runtime import Runtime
from idp_sync.sso import saml
from idp_sync.sso import serializers as ser
from idp_sync.sso.attributes import SignedProfile, read_profile
from idp_sync.sso.models import (
    Connection,
    SamlAssertionReplay,
    SamlAuthnRequest,
    SamlIdpSigningCert,
    SsoAccessToken,
    SsoAuthorizationCode,
    SsoLoginEvent,
    SsoProfile,
    SsoRedirectUri,
)
from idp_sync.sso.saml import SamlRefusal
from idp_sync.sso.signin import directory_inputs, mappings_of
from idp_sync.tasks import request_task
from idp_sync.users.models import User

SIGN_INS_TASK = "idp_sync.sso.sign_ins"
REQUEST_TTL = dt.timedelta(minutes=10)
CODE_TTL = dt.timedelta(minutes=10)
TOKEN_TTL = dt.timedelta(minutes=10)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def registered_redirect_uris(settings: Settings, session: Session | None = None) -> list[str]:
    """``IDP_SYNC_REDIRECT_URIS`` first (the IdP-initiated default), then those of the API."""
    uris = [u.strip() for u in settings.redirect_uris.split(",") if u.strip()]
    if session is not None:
        uris += session.scalars(select(SsoRedirectUri.uri).order_by(SsoRedirectUri.id)).all()
    return uris


def _active_connection(
    session: Session, connection: str | None, organization: str | None
) -> Connection:
    query = select(Connection).where(Connection.state == "active")
    if connection:
        query = query.where(Connection.id == connection)
    elif organization:
        query = query.where(Connection.organization_id == organization)
    else:
        raise BadRequest("give connection or organization", code="invalid_request")
    found = session.scalar(query.order_by(Connection.id).limit(1))
    if found is None:
        raise NotFound("no active SSO connection found", code="connection_not_found")
    return found


def authorize(
    session: Session,
    settings: Settings,
    *,
    client_id: str | None,
    redirect_uri: str | None,
    response_type: str | None,
    state: str | None,
    connection: str | None,
    organization: str | None,
    force_authn: bool = False,
) -> str:
    """The IdP URL carrying a new AuthnRequest; refused before any redirect when the client
    or the redirect URI is not ours."""
    if not client_id or not secrets.compare_digest(client_id, settings.client_id):
        raise BadRequest("unknown client_id", code="invalid_client")
    if not redirect_uri or redirect_uri not in registered_redirect_uris(settings, session):
        raise BadRequest("redirect_uri is not registered", code="invalid_redirect_uri")
    if response_type not in (None, "code"):
        raise BadRequest("response_type must be code", code="unsupported_response_type")
    target = _active_connection(session, connection, organization)
    now = utcnow()
    request = SamlAuthnRequest(
        id=new_id("authn_request"),
        connection_id=target.id,
        redirect_uri=redirect_uri,
        state=state,
        expires_at=now + REQUEST_TTL,
        created_at=now,
    )
    session.add(request)
    xml = authn_request_xml(request.id, target, now, force_authn)
    deflated = zlib.compress(xml.encode())[2:-4]  # raw DEFLATE (RFC 1951)
    query = urlencode(
        {"SAMLRequest": base64.b64encode(deflated).decode(), "RelayState": request.id}
    )
    separator = "&" if urlsplit(target.idp_sso_url or "").query else "?"
    return f"{target.idp_sso_url}{separator}{query}"


def authn_request_xml(request_id: str, c: Connection, now: dt.datetime, force: bool) -> str:
    """SAML core §3.4.1; the ACS URL and HTTP-POST binding the IdP must answer to."""
    instant = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    force_attr = ' ForceAuthn="true"' if force else ""
    return (
        '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="{request_id}" Version="2.0" IssueInstant="{instant}"{force_attr} '
        f'Destination="{_attr(c.idp_sso_url or "")}" '
        'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        f'AssertionConsumerServiceURL="{_attr(c.acs_url)}">'
        f"<saml:Issuer>{_attr(c.sp_entity_id)}</saml:Issuer>"
        '<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified" '
        'AllowCreate="true"/></samlp:AuthnRequest>'
    )


def _attr(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;").replace(">", "&gt;")
    )


@dataclass(frozen=True)
class Accepted:
    redirect_url: str
    profile: dict[str, Any]  # the Profile as /sso/token will return it


@dataclass(frozen=True)
class ConnectionConfig:
    """What a sign-in reads of its connection, cached per configuration token (immutable:
    shared between requests; ``attribute_maps`` is never written)."""

    id: str
    organization_id: str
    connection_type: str
    state: str
    attribute_maps: dict[str, Any]
    allow_idp_initiated: bool
    sp: saml.SpConfig
    mappings: tuple[GroupMapping, ...]
    redirect_uris: tuple[str, ...]  # registered ones: the first is the IdP-initiated target


def sp_config(session: Session, c: Connection, settings: Settings) -> saml.SpConfig:
    certs = session.scalars(
        select(SamlIdpSigningCert.value)
        .where(SamlIdpSigningCert.connection_id == c.id)
        .order_by(SamlIdpSigningCert.id)
    ).all()
    return saml.SpConfig(
        sp_entity_id=c.sp_entity_id,
        acs_url=c.acs_url,
        idp_entity_id=c.idp_entity_id or "",
        idp_sso_url=c.idp_sso_url or "",
        certs=tuple(certs),
        allow_sha1=c.allow_sha1,
        skew_seconds=settings.saml_clock_skew_seconds,
        max_bytes=settings.saml_max_response_bytes,
    )


def _load_config(
    conn: SAConnection, settings: Settings, connection_id: str
) -> ConnectionConfig | None:
    with Session(bind=conn) as session:
        c = session.get(Connection, connection_id)
        if c is None:
            return None
        return ConnectionConfig(
            id=c.id,
            organization_id=c.organization_id,
            connection_type=c.connection_type,
            state=c.state,
            attribute_maps=dict(c.attribute_maps or {}),
            allow_idp_initiated=c.allow_idp_initiated,
            sp=sp_config(session, c, settings),
            mappings=mappings_of(session, {c.id}).get(c.id, ()),
            redirect_uris=tuple(registered_redirect_uris(settings, session)),
        )


def _role_state(conn: SAConnection, organization_id: str) -> RoleState:
    with Session(bind=conn) as session:
        return RoleCatalog(session).for_org(organization_id).state


def accept(
    runtime: Runtime,
    connection_id: str,
    posted: str,
    *,
    ip_address: str | None,
    user_agent: str | None,
) -> Accepted:
    """Validate a posted response and sign the user in; ``SamlRefusal`` on any failure.

    The hot path of SSO: one transaction on one connection, Core statements only (the
    ORM is for loading what the configuration cache does not hold), committed here, and
    the sign-in task published after the commit."""
    settings, cache = runtime.settings, runtime.config_cache
    # The token read is the transaction's first statement and the pooled connection's ping.
    conn, token = connect_unpinged(runtime.engine, cache.token)
    with conn:  # returned to the pool at the end, rolled back unless committed
        config = cache.get(
            token,
            ("sso_connection", connection_id),
            lambda: _load_config(conn, settings, connection_id),
        )
        if config is None:
            raise SamlRefusal("connection_not_found", 404)
        if config.state != "active":
            raise SamlRefusal("connection_inactive", 403)
        now = utcnow()
        assertion = saml.validate(posted, config.sp, now)
        _remember_assertion(conn, config.id, assertion, settings)
        redirect_uri, state = _consume_request(conn, config, assertion, now)
        signed = read_profile(assertion, config.connection_type, config.attribute_maps)
        if not signed.email or "@" not in signed.email:
            raise SamlRefusal("missing_email")
        known = _known(conn, config, signed)
        # Entra groups overage: the groups are unknown; the last known ones are kept.
        if signed.groups is not None:
            groups = list(signed.groups)
        else:
            groups = list(known[0].groups or []) if known and known[0].profile_known else []
        state_of_org = cache.get(
            token,
            ("org_roles", config.organization_id),
            lambda: _role_state(conn, config.organization_id),
        )
        roles = _resolve(conn, config, state_of_org, known, groups)
        profile_id = _upsert_profile(conn, config, signed, roles, now)
        conn.execute(
            insert(_LOGINS),
            {
                "id": new_id("sso_login"),
                "profile_id": profile_id,
                "connection_id": config.id,
                "ip_address": ip_address,
                "user_agent": (user_agent or "")[:512] or None,
                "correlation_id": current_correlation_id(),
                "created_at": now,
            },
        )
        profile = ser.profile(profile_id, config, signed, roles, groups)
        code = secrets.token_urlsafe(32)
        conn.execute(
            insert(_CODES),
            {
                "code_hash": _hash(code),
                "profile_id": profile_id,
                "redirect_uri": redirect_uri,
                "profile": profile,
                "expires_at": now + CODE_TTL,
                "created_at": now,
            },
        )
        conn.commit()
    if runtime.celery is not None:
        # The login row is the work: the worker takes every pending one (beat runs the
        # task too, so a request lost with this process only delays it).
        request_task(runtime.celery, SIGN_INS_TASK, queue="sync")
    params = {"code": code, **({"state": state} if state is not None else {})}
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return Accepted(f"{redirect_uri}{separator}{urlencode(params)}", profile)


_PROFILES = cast(Table, SsoProfile.__table__)
_LOGINS = cast(Table, SsoLoginEvent.__table__)
_CODES = cast(Table, SsoAuthorizationCode.__table__)
_REQUESTS = cast(Table, SamlAuthnRequest.__table__)
_REPLAYS = cast(Table, SamlAssertionReplay.__table__)
_CONSUME_REQUEST = (
    delete(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("id"))
    .returning(
        _REQUESTS.c.connection_id,
        _REQUESTS.c.redirect_uri,
        _REQUESTS.c.state,
        _REQUESTS.c.expires_at,
    )
)


def _membership_reads() -> tuple[Select[Any], Select[Any]]:
    """What resolving a sign-in reads, for a known profile and for a first sign-in: the
    membership's id, its API roles (in order) and whether a live directory user links it
    (then its directory input is loaded too). The membership is that of the profile's
    user in the organization, else (no profile yet, or the worker has not linked it) of
    the user with the sign-in's email, as ``signin._memberships_inputs`` finds it. For a
    known profile, one statement also returns its user and last known groups."""
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
    known = (
        select(
            literal(True).label("profile_known"),
            _PROFILES.c.groups,
            om.c.id,
            api.c.role_slug,
            linked,
        )
        .select_from(_PROFILES)
        .outerjoin(om, and_(in_org, om.c.user_id == func.coalesce(_PROFILES.c.user_id, by_email)))
        .outerjoin(api, api.c.membership_id == om.c.id)
        .where(
            _PROFILES.c.connection_id == bindparam("connection_id"),
            _PROFILES.c.idp_id == bindparam("idp_id"),
        )
        .order_by(api.c.position)
    )
    first = (
        select(
            literal(False).label("profile_known"),
            null().label("groups"),
            om.c.id,
            api.c.role_slug,
            linked,
        )
        .select_from(om)
        .outerjoin(api, api.c.membership_id == om.c.id)
        .where(in_org, om.c.user_id == by_email)
        .order_by(api.c.position)
    )
    return known, first


_KNOWN_PROFILE, _FIRST_SIGN_IN = _membership_reads()


def _known(conn: SAConnection, config: ConnectionConfig, signed: SignedProfile) -> list[Row[Any]]:
    """The rows of ``_membership_reads``: one per API role of the membership (at least one
    for a known profile); none for a first sign-in of a user with no membership."""
    params = {
        "organization_id": config.organization_id,
        "email": signed.email,
        "connection_id": config.id,
        "idp_id": signed.idp_id,
    }
    rows = conn.execute(_KNOWN_PROFILE, params).all()
    return list(rows) if rows else list(conn.execute(_FIRST_SIGN_IN, params).all())


def _resolve(
    conn: SAConnection,
    config: ConnectionConfig,
    state: RoleState,
    known: list[Row[Any]],
    groups: list[str],
) -> list[str]:
    """The role(s) the profile's membership will have (as ``signin.resolve_profiles``): the
    membership's own inputs (API roles, directory) when it exists, with this sign-in's
    groups as the SSO source."""
    membership_id = known[0].id if known else None
    api_roles = tuple(r.role_slug for r in known if r.role_slug) if membership_id else ()
    directory = None
    if membership_id is not None and known[0].linked:
        with Session(bind=conn) as session:
            directory = directory_inputs(session, [membership_id]).get(membership_id)
    member = MembershipInput(
        api_roles=api_roles,
        directory=directory,
        sso=IdpInput(config.id, frozenset(groups), config.mappings),
    )
    return list(resolve(state, member).roles)


def _consume_request(
    conn: SAConnection,
    config: ConnectionConfig,
    assertion: saml.ValidAssertion,
    now: dt.datetime,
) -> tuple[str, str | None]:
    """SP-initiated: the outstanding AuthnRequest answered (SAML profiles §4.1.4.2:
    InResponseTo), deleted so it answers once. IdP-initiated: only where allowed."""
    if assertion.in_response_to is None:
        if not config.allow_idp_initiated or not config.redirect_uris:
            raise SamlRefusal("idp_initiated_not_allowed", 403)
        return config.redirect_uris[0], None
    # One statement: the row is locked, read and gone; a refusal below rolls it all back.
    request = conn.execute(_CONSUME_REQUEST, {"id": assertion.in_response_to}).first()
    if request is None or request.connection_id != config.id:
        raise SamlRefusal("in_response_to_mismatch")
    if request.expires_at <= now:
        raise SamlRefusal("authn_request_expired")
    return request.redirect_uri, request.state


# Profile columns a sign-in writes over; with its groups, unless the IdP sent the Entra
# groups overage claim instead of them.
_SIGN_IN_COLUMNS = (
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
_GROUP_COLUMNS = ("groups", "groups_received_at")


def _upsert(table: Table, columns: tuple[str, ...], conflict: str, update: str) -> TextClause:
    """``INSERT .. ON CONFLICT .. RETURNING`` as one constant statement with typed
    parameters, the same text on PostgreSQL and SQLite. (SQLAlchemy does not cache the
    compiled form of its dialect ``insert().on_conflict_*()`` constructs: built that way,
    each sign-in compiled both of these again.) Names come from the table only."""
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(f":{c}" for c in columns)
    sql = (
        f"INSERT INTO {table.name} ({names}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT ({conflict}) {update}"
    )
    return text(sql).bindparams(*(bindparam(c, type_=table.c[c].type) for c in columns))


_REPLAY_INSERT = _upsert(
    _REPLAYS,
    ("assertion_id", "connection_id", "not_on_or_after", "created_at"),
    "assertion_id",
    "DO NOTHING RETURNING assertion_id",
)


def _profile_upsert(columns: tuple[str, ...]) -> TextClause:
    inserted = ("id", "connection_id", "organization_id", "idp_id", "created_at")
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns)
    return _upsert(
        _PROFILES,
        inserted + _SIGN_IN_COLUMNS + _GROUP_COLUMNS,
        "connection_id, idp_id",
        f"DO UPDATE SET {updates} RETURNING id",
    )


_PROFILE_UPSERT = _profile_upsert(_SIGN_IN_COLUMNS + _GROUP_COLUMNS)
_PROFILE_UPSERT_KEEPING_GROUPS = _profile_upsert(_SIGN_IN_COLUMNS)


def _remember_assertion(
    conn: SAConnection, connection_id: str, assertion: saml.ValidAssertion, settings: Settings
) -> None:
    """The replay cache (DESIGN §7), in one statement: the insert does nothing if the id is
    known. A concurrent use of the same id waits on the unique index for the other
    transaction: if that one commits, this one is the replay."""
    keep_until = assertion.not_on_or_after + dt.timedelta(seconds=settings.saml_clock_skew_seconds)
    stored = conn.execute(
        _REPLAY_INSERT,
        {
            "assertion_id": assertion.assertion_id,
            "connection_id": connection_id,
            "not_on_or_after": keep_until,
            "created_at": utcnow(),
        },
    ).first()
    if stored is None:
        raise SamlRefusal("replayed")


def _upsert_profile(
    conn: SAConnection,
    config: ConnectionConfig,
    signed: SignedProfile,
    roles: list[str],
    now: dt.datetime,
) -> str:
    """The profile written in one statement, its id returned. Two first sign-ins at once
    for the same person (two tabs, a retry) do not collide on the unique key: the second
    waits for the first transaction and then updates the one row."""
    known = signed.groups is not None
    values: dict[str, Any] = {
        "id": new_id("sso_profile"),
        "connection_id": config.id,
        "organization_id": config.organization_id,
        "idp_id": signed.idp_id,
        "created_at": now,
        "email": signed.email,
        "first_name": signed.first_name,
        "last_name": signed.last_name,
        "name": signed.name,
        "raw_attributes": signed.raw_attributes,
        "groups_known": known,
        "roles": roles,
        "last_sign_in_at": now,
        "updated_at": now,
        # A first sign-in with the overage claim starts with no known groups.
        "groups": list(signed.groups) if signed.groups is not None else [],
        "groups_received_at": now if known else None,
    }
    profile_id: str = conn.execute(
        _PROFILE_UPSERT if known else _PROFILE_UPSERT_KEEPING_GROUPS, values
    ).scalar_one()
    return profile_id


# --- token and profile ----------------------------------------------------------------


def exchange(
    session: Session, settings: Settings, *, client_id: str | None, code: str | None
) -> dict[str, Any]:
    """``POST /sso/token``: a one-use code for an access token and the profile."""
    if not client_id or not secrets.compare_digest(client_id, settings.client_id):
        raise BadRequest("unknown client_id", code="invalid_client")
    row = session.get(SsoAuthorizationCode, _hash(code or ""), with_for_update=True)
    if row is None or row.expires_at <= utcnow():
        raise BadRequest("the code is invalid, expired or already used", code="invalid_grant")
    profile = dict(row.profile)
    session.delete(row)
    token, now = secrets.token_urlsafe(32), utcnow()
    session.add(
        SsoAccessToken(
            token_hash=_hash(token),
            profile_id=row.profile_id,
            profile=profile,
            expires_at=now + TOKEN_TTL,
            created_at=now,
        )
    )
    return {
        "token_type": "Bearer",
        "access_token": token,
        "expires_in": int(TOKEN_TTL.total_seconds()),
        "profile": profile,
    }


def profile_for(session: Session, token: str) -> dict[str, Any]:
    row = session.get(SsoAccessToken, _hash(token))
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("invalid or expired access token", code="unauthorized")
    return dict(row.profile)
