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

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from idp_sync.config import Settings
from idp_sync.db import is_postgres, utcnow
from idp_sync.errors import BadRequest, NotFound, Unauthorized
from idp_sync.ids import new_id
from idp_sync.memberships.recompute import RoleCatalog
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
from idp_sync.sso.signin import resolve_profile
from idp_sync.tasks import enqueue

SIGN_IN_TASK = "idp_sync.sso.sign_in"
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
    profile: SsoProfile


def sp_config(session: Session, c: Connection, settings: Settings) -> saml.SpConfig:
    certs = session.scalars(
        select(SamlIdpSigningCert.value).where(SamlIdpSigningCert.connection_id == c.id)
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


def accept(
    session: Session,
    settings: Settings,
    connection: Connection,
    posted: str,
    *,
    ip_address: str | None,
    user_agent: str | None,
) -> Accepted:
    """Validate a posted response and sign the user in; ``SamlRefusal`` on any failure."""
    if connection.state != "active":
        raise SamlRefusal("connection_inactive", 403)
    now = utcnow()
    assertion = saml.validate(posted, sp_config(session, connection, settings), now)
    _remember_assertion(session, connection, assertion, settings)
    redirect_uri, state = _consume_request(session, settings, connection, assertion, now)
    signed = read_profile(assertion, connection.connection_type, connection.attribute_maps)
    if not signed.email or "@" not in signed.email:
        raise SamlRefusal("missing_email")
    profile = _upsert_profile(session, connection, signed, now)
    profile.roles = resolve_profile(session, profile, RoleCatalog(session))
    login = SsoLoginEvent(
        id=new_id("sso_login"),
        profile_id=profile.id,
        connection_id=connection.id,
        ip_address=ip_address,
        user_agent=(user_agent or "")[:512] or None,
        created_at=now,
    )
    session.add(login)
    session.flush()
    enqueue(session, SIGN_IN_TASK, queue="sync", login_id=login.id)
    code = secrets.token_urlsafe(32)
    session.add(
        SsoAuthorizationCode(
            code_hash=_hash(code),
            profile_id=profile.id,
            redirect_uri=redirect_uri,
            profile=ser.profile(profile, connection.connection_type),
            expires_at=now + CODE_TTL,
            created_at=now,
        )
    )
    params = {"code": code, **({"state": state} if state is not None else {})}
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return Accepted(f"{redirect_uri}{separator}{urlencode(params)}", profile)


def _consume_request(
    session: Session,
    settings: Settings,
    connection: Connection,
    assertion: saml.ValidAssertion,
    now: dt.datetime,
) -> tuple[str, str | None]:
    """SP-initiated: the outstanding AuthnRequest answered (SAML profiles §4.1.4.2:
    InResponseTo), deleted so it answers once. IdP-initiated: only where allowed."""
    if assertion.in_response_to is None:
        uris = registered_redirect_uris(settings, session)
        if not connection.allow_idp_initiated or not uris:
            raise SamlRefusal("idp_initiated_not_allowed", 403)
        return uris[0], None
    # One statement: the row is locked, read and gone; a refusal below rolls it all back.
    # On the table, not the ORM entity: nothing of it is in the session to synchronise.
    table = cast(Table, SamlAuthnRequest.__table__)
    request = session.execute(
        delete(table)
        .where(table.c.id == assertion.in_response_to)
        .returning(table.c.connection_id, table.c.redirect_uri, table.c.state, table.c.expires_at)
    ).first()
    if request is None or request.connection_id != connection.id:
        raise SamlRefusal("in_response_to_mismatch")
    if request.expires_at <= now:
        raise SamlRefusal("authn_request_expired")
    return request.redirect_uri, request.state


def _remember_assertion(
    session: Session, connection: Connection, assertion: saml.ValidAssertion, settings: Settings
) -> None:
    """The replay cache (DESIGN §7), in one statement: the insert does nothing if the id is
    known. A concurrent use of the same id waits on the unique index for the other
    transaction: if that one commits, this one is the replay."""
    keep_until = assertion.not_on_or_after + dt.timedelta(seconds=settings.saml_clock_skew_seconds)
    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    table = cast(Table, SamlAssertionReplay.__table__)
    stored = session.execute(
        insert(table)
        .values(
            assertion_id=assertion.assertion_id,
            connection_id=connection.id,
            not_on_or_after=keep_until,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[table.c.assertion_id])
        .returning(table.c.assertion_id)
    ).first()
    if stored is None:
        raise SamlRefusal("replayed")


def _upsert_profile(
    session: Session, connection: Connection, signed: SignedProfile, now: dt.datetime
) -> SsoProfile:
    query = (
        select(SsoProfile)
        .where(SsoProfile.connection_id == connection.id, SsoProfile.idp_id == signed.idp_id)
        .with_for_update()
    )
    profile = session.scalar(query)
    if profile is None:
        # A first sign-in. Two at once for the same person (two tabs, a retry) must not
        # collide on the unique key: the insert of the second waits for the first
        # transaction and then does nothing; both go on with the one row, under lock.
        insert = postgresql.insert if is_postgres(session) else sqlite.insert
        table = cast(Table, SsoProfile.__table__)
        session.execute(
            insert(table)
            .values(
                id=new_id("sso_profile"),
                connection_id=connection.id,
                organization_id=connection.organization_id,
                idp_id=signed.idp_id,
                email=signed.email,
                groups=[],
                created_at=now,
                updated_at=now,
                last_sign_in_at=now,
            )
            .on_conflict_do_nothing(index_elements=[table.c.connection_id, table.c.idp_id])
        )
        profile = session.scalar(query.execution_options(populate_existing=True))
        assert profile is not None  # inserted by this transaction or a committed one
    profile.email = signed.email
    profile.first_name, profile.last_name, profile.name = (
        signed.first_name,
        signed.last_name,
        signed.name,
    )
    profile.raw_attributes = signed.raw_attributes
    # Entra groups overage: the groups are unknown; keep the last known ones.
    profile.groups_known = signed.groups is not None
    if signed.groups is not None:
        profile.groups = list(signed.groups)
        profile.groups_received_at = now
    profile.last_sign_in_at = profile.updated_at = now
    return profile


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
