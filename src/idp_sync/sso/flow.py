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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

from sqlalchemy import Connection as SAConnection
from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from idp_sync.config import Settings
from idp_sync.context import current_correlation_id
from idp_sync.db import connect_unpinged, utcnow
from idp_sync.errors import BadRequest, NotFound, Unauthorized
from idp_sync.ids import new_id
from idp_sync.memberships.recompute import RoleCatalog
from idp_sync.rbac.resolver import GroupMapping, IdpInput, RoleState
from idp_sync.runtime import Runtime
from idp_sync.sso import acs_sql, saml
from idp_sync.sso import serializers as ser
from idp_sync.sso.attributes import SignedProfile, read_profile
from idp_sync.sso.models import (
    Connection,
    SamlAuthnRequest,
    SamlIdpSigningCert,
    SsoAccessToken,
    SsoAuthorizationCode,
    SsoRedirectUri,
)
from idp_sync.sso.saml import SamlRefusal
from idp_sync.sso.signin import directory_inputs, mappings_of, sso_roles
from idp_sync.tasks import request_task

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

    The hot path of SSO: one transaction on one connection, Core statements only
    (``acs_sql``; the ORM only loads what the configuration cache does not hold),
    committed here; the worker is asked for after the commit.

    A sign-in is judged against the connection's settings at the configuration token
    read in its own transaction. When they are cached, the response is validated before
    any statement, and the token comes back with the first statement (``acs_sql.once``): if
    it is still the one they were cached under, the judgement stands. Otherwise, and for
    any refusal, the sign-in starts again from the token read, loading what changed."""
    cache = runtime.config_cache
    cached = cache.peek(("sso_connection", connection_id))
    if cached is not None and cached[1] is not None and cached[1].state == "active":
        token, config = cached
        now = utcnow()
        try:
            assertion = saml.validate(posted, config.sp, now)
        except SamlRefusal:
            pass  # judged again below, against the current configuration
        else:
            params = once_params(runtime.settings, config, assertion, now)
            conn, done = connect_unpinged(runtime.engine, lambda c: acs_sql.once(c, params))
            with conn:  # returned to the pool at the end, rolled back unless committed
                if done.token == token:
                    judged = Judged(token, config, assertion, done, now)
                else:
                    conn.rollback()  # the configuration changed: start again
                    judged = _judge(runtime, conn, cache.token(conn), connection_id, posted)
                return _sign_in(runtime, conn, judged, ip_address, user_agent)
    # The token read is then the transaction's first statement and the connection's ping.
    conn, first = connect_unpinged(runtime.engine, cache.token)
    with conn:
        judged = _judge(runtime, conn, first, connection_id, posted)
        return _sign_in(runtime, conn, judged, ip_address, user_agent)


class Judged(NamedTuple):
    """A response validated against ``config`` as it was at ``token``, after
    ``acs_sql.once``."""

    token: int | None
    config: ConnectionConfig
    assertion: saml.ValidAssertion
    done: acs_sql.Once
    now: dt.datetime


def _judge(
    runtime: Runtime,
    conn: SAConnection,
    token: int | None,
    connection_id: str,
    posted: str,
) -> Judged:
    """The response judged against the configuration at ``token``, read first in
    ``conn``'s transaction, loaded if not cached under it."""
    cache = runtime.config_cache
    config = cache.get(
        token,
        ("sso_connection", connection_id),
        lambda: _load_config(conn, runtime.settings, connection_id),
    )
    if config is None:
        raise SamlRefusal("connection_not_found", 404)
    if config.state != "active":
        raise SamlRefusal("connection_inactive", 403)
    now = utcnow()
    assertion = saml.validate(posted, config.sp, now)
    done = acs_sql.once(conn, once_params(runtime.settings, config, assertion, now))
    return Judged(token, config, assertion, done, now)


def once_params(
    settings: Settings, config: ConnectionConfig, assertion: saml.ValidAssertion, now: dt.datetime
) -> dict[str, Any]:
    """``acs_sql.once``'s parameters for a validated assertion: the profile is looked up
    by what the assertion names (one without an email reads nothing, and is refused)."""
    signed = read_profile(assertion, config.connection_type, config.attribute_maps)
    return {
        "assertion_id": assertion.assertion_id,
        "connection_id": config.id,
        "not_on_or_after": acs_sql.keep_until(
            assertion.not_on_or_after, settings.saml_clock_skew_seconds
        ),
        "created_at": now,
        "request_id": assertion.in_response_to,
        "organization_id": config.organization_id,
        "idp_id": signed.idp_id,
        "email": signed.email or "",
    }


def _sign_in(
    runtime: Runtime,
    conn: SAConnection,
    judged: Judged,
    ip_address: str | None,
    user_agent: str | None,
) -> Accepted:
    """A judged response: the profile, its role(s), the login row and the code,
    committed."""
    token, config, assertion, done, now = judged
    decided = decide(config, assertion, done, now)
    state_of_org = runtime.config_cache.get(
        token,
        ("org_roles", config.organization_id),
        lambda: _role_state(conn, config.organization_id),
    )
    directory = None
    membership_id = done.known[0].id if done.known else None
    if membership_id is not None and done.known[0].linked:
        with Session(bind=conn) as session:
            directory = directory_inputs(session, [membership_id]).get(membership_id)
    roles = resolve_roles(config, state_of_org, done.known, decided.groups, directory)
    rows = SignInRows.make(config, decided, roles, now, ip_address, user_agent)
    acs_sql.write(conn, rows.profile, rows.login, rows.code, rows.code_profile)
    conn.commit()
    return finish(runtime, decided, rows)


@dataclass(frozen=True)
class Decided:
    """What a sign-in that passed every check goes on with."""

    redirect_uri: str
    state: str | None
    signed: SignedProfile
    groups: list[str]  # this sign-in's, or the last known ones after an Entra overage


def decide(
    config: ConnectionConfig, assertion: saml.ValidAssertion, done: acs_sql.Once, now: dt.datetime
) -> Decided:
    """The checks that need ``acs_sql.once``'s answers, in order; ``SamlRefusal`` if one
    fails (the caller's transaction then rolls back)."""
    if not done.stored:
        raise SamlRefusal("replayed")
    redirect_uri, state = _answered_request(config, done.request, assertion.in_response_to, now)
    signed = read_profile(assertion, config.connection_type, config.attribute_maps)
    if not signed.email or "@" not in signed.email:
        raise SamlRefusal("missing_email")
    known = done.known
    # Entra groups overage: the groups are unknown; the last known ones are kept.
    if signed.groups is not None:
        groups = list(signed.groups)
    else:
        groups = list(known[0].groups or []) if known and known[0].profile_known else []
    return Decided(redirect_uri, state, signed, groups)


@dataclass(frozen=True)
class SignInRows:
    """The values ``acs_sql.write`` writes for a sign-in, and the code it hands out."""

    profile: dict[str, Any]
    login: dict[str, Any]
    code: dict[str, Any]
    code_profile: dict[str, Any]  # the Profile; its id is set by the write
    raw_code: str

    @classmethod
    def make(
        cls,
        config: ConnectionConfig,
        decided: Decided,
        roles: list[str],
        now: dt.datetime,
        ip_address: str | None,
        user_agent: str | None,
    ) -> SignInRows:
        signed, groups = decided.signed, decided.groups
        known_groups = signed.groups is not None
        raw_code = secrets.token_urlsafe(32)
        return cls(
            profile={
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
                "groups_known": known_groups,
                "roles": roles,
                "last_sign_in_at": now,
                "updated_at": now,
                # A first sign-in with the overage claim starts with no known groups.
                "groups": groups if known_groups else [],
                "groups_received_at": now if known_groups else None,
            },
            login={
                "id": new_id("sso_login"),
                "ip_address": ip_address,
                "user_agent": (user_agent or "")[:512] or None,
                "correlation_id": current_correlation_id(),
            },
            code={
                "code_hash": _hash(raw_code),
                "redirect_uri": decided.redirect_uri,
                "expires_at": now + CODE_TTL,
            },
            code_profile=ser.profile("", config, signed, roles, groups),
            raw_code=raw_code,
        )


def finish(runtime: Runtime, decided: Decided, rows: SignInRows) -> Accepted:
    """After the commit: ask for the worker, and the redirect to the app with the code."""
    if runtime.celery is not None:
        # The login row is the work: the worker takes every pending one (beat runs the
        # task too, so a request lost with this process only delays it).
        request_task(runtime.celery, SIGN_INS_TASK, queue="sync")
    params = {
        "code": rows.raw_code,
        **({"state": decided.state} if decided.state is not None else {}),
    }
    separator = "&" if urlsplit(decided.redirect_uri).query else "?"
    return Accepted(f"{decided.redirect_uri}{separator}{urlencode(params)}", rows.code_profile)


def resolve_roles(
    config: ConnectionConfig,
    state: RoleState,
    known: Sequence[acs_sql.Known],
    groups: list[str],
    directory: IdpInput | None,
) -> list[str]:
    """The role(s) the profile's membership will have: ``signin.sso_roles`` with the API
    roles of the membership ``known`` found, if any."""
    membership_id = known[0].id if known else None
    api_roles = tuple(r.role_slug for r in known if r.role_slug) if membership_id else ()
    return sso_roles(state, config.id, groups, config.mappings, api_roles, directory)


def _answered_request(
    config: ConnectionConfig,
    request: acs_sql.Request | None,
    in_response_to: str | None,
    now: dt.datetime,
) -> tuple[str, str | None]:
    """SP-initiated: the outstanding AuthnRequest answered (SAML profiles §4.1.4.2:
    InResponseTo), taken out by ``acs_sql.once`` so it answers once. IdP-initiated: only
    where allowed."""
    if in_response_to is None:
        if not config.allow_idp_initiated or not config.redirect_uris:
            raise SamlRefusal("idp_initiated_not_allowed", 403)
        return config.redirect_uris[0], None
    if request is None or request.connection_id != config.id:
        raise SamlRefusal("in_response_to_mismatch")
    if request.expires_at <= now:
        raise SamlRefusal("authn_request_expired")
    return request.redirect_uri, request.state


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
