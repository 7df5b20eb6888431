"""Use cases for SSO connections, their IdP signing certificates and group-to-role mappings.

Services decide; they never commit. A connection is ``active`` once it has an IdP entity
id, an SSO URL and a signing certificate; the transitions write ``connection.activated`` /
``connection.deactivated`` in the same transaction. A mapping change (and a deletion)
starts a recompute job on the ``bulk`` queue (DESIGN §4).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.errors import BadRequest, Conflict, NotFound, Unprocessable
from idp_sync.events.services import record_event
from idp_sync.ids import new_id
from idp_sync.jobs.models import Job
from idp_sync.jobs.services import start_job
from idp_sync.organizations.services import get_organization
from idp_sync.rbac.services import find_role
from idp_sync.sso import serializers as ser
from idp_sync.sso.attributes import CONNECTION_TYPES
from idp_sync.sso.models import (
    Connection,
    SamlIdpSigningCert,
    SsoGroupRoleMapping,
    SsoRedirectUri,
)

MAPPING_JOB = "sso_mapping_change"
SAML_OPTION_FIELDS = ("idp_entity_id", "idp_sso_url", "acs_url", "sp_entity_id")
FLAG_FIELDS = ("allow_idp_initiated", "allow_sha1")


def get_connection(session: Session, connection_id: str) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None:
        raise NotFound(f"connection {connection_id} not found")
    return connection


def _unprocessable(field: str, message: str) -> Unprocessable:
    return Unprocessable(message, errors=[{"code": "invalid", "field": field}])


def create_connection(session: Session, body: dict[str, Any], *, public_url: str) -> Connection:
    """A SAML connection; with an ``external_id`` already used in the organization, that one."""
    organization_id = body["organization_id"]
    get_organization(session, organization_id)
    if body.get("external_id"):
        existing = session.scalar(
            select(Connection).where(
                Connection.organization_id == organization_id,
                Connection.external_id == body["external_id"],
            )
        )
        if existing is not None:
            return existing
    options = body.get("saml_options")
    if body.get("oidc_options") or not isinstance(options, dict):
        raise _unprocessable("saml_options", "only SAML connections are supported")
    if options.get("idp_metadata_url"):
        raise _unprocessable("idp_metadata_url", "idp_metadata_url is not supported yet")
    connection_type = body.get("connection_type") or "GenericSAML"
    if connection_type not in CONNECTION_TYPES:
        raise _unprocessable(
            "connection_type", f"connection_type must be one of {CONNECTION_TYPES}"
        )
    connection_id, now = new_id("connection"), utcnow()
    base = f"{public_url.rstrip('/')}/sso/saml/{connection_id}"
    connection = Connection(
        id=connection_id,
        organization_id=organization_id,
        name=body.get("name") or connection_type,
        connection_type=connection_type,
        state="draft",
        external_id=body.get("external_id"),
        sp_entity_id=options.get("sp_entity_id") or f"{base}/metadata",
        acs_url=options.get("acs_url") or f"{base}/acs",
        attribute_maps=body.get("attribute_maps") or {},
        allow_idp_initiated=bool(options.get("allow_idp_initiated")),
        allow_sha1=bool(options.get("allow_sha1")),
        created_at=now,
        updated_at=now,
    )
    _set_options(connection, options)
    session.add(connection)
    for pem in options.get("idp_signing_certs") or []:
        _add_cert(session, connection, pem)
    session.flush()
    _refresh_state(session, connection)
    return connection


def _set_options(connection: Connection, options: dict[str, Any]) -> None:
    for field in SAML_OPTION_FIELDS:
        value = options.get(field)
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise _unprocessable(field, f"{field} must be a non-empty string")
            if field in ("idp_sso_url", "acs_url") and not value.startswith(
                ("https://", "http://")
            ):
                raise _unprocessable(field, f"{field} must be an http(s) URL")
            setattr(connection, field, value.strip())
    for flag in FLAG_FIELDS:
        if isinstance(options.get(flag), bool):
            setattr(connection, flag, options[flag])


def update_connection(session: Session, connection: Connection, body: dict[str, Any]) -> Connection:
    """Only the given fields change (``PATCH /connections/{id}``)."""
    if body.get("connection_type") not in (None, connection.connection_type):
        raise Unprocessable(
            "connection_type cannot be changed", code="connection_type_not_updatable"
        )
    if body.get("name"):
        connection.name = body["name"]
    if "external_id" in body:
        connection.external_id = body["external_id"]
    maps = body.get("attribute_maps")
    if isinstance(maps, dict):
        merged = dict(connection.attribute_maps)
        for key, value in maps.items():
            merged[key] = {**(merged.get(key) or {}), **(value or {})}
        connection.attribute_maps = merged
    if isinstance(body.get("saml_options"), dict):
        _set_options(connection, body["saml_options"])
    connection.updated_at = utcnow()
    _refresh_state(session, connection)
    return connection


def set_enabled(session: Session, connection: Connection, enabled: bool) -> Connection:
    """Ours: deactivate a connection (sign-ins refused) or activate it again."""
    was_active = connection.state == "active"
    connection.state = "draft" if enabled else "inactive"
    connection.updated_at = utcnow()
    _refresh_state(session, connection, was_active=was_active)
    return connection


def _refresh_state(
    session: Session, connection: Connection, was_active: bool | None = None
) -> None:
    before = connection.state == "active" if was_active is None else was_active
    if connection.state != "inactive":
        complete = bool(
            connection.idp_entity_id
            and connection.idp_sso_url
            and _cert_count(session, connection.id)
        )
        connection.state = "active" if complete else "draft"
    after = connection.state == "active"
    if before != after:
        name = "connection.activated" if after else "connection.deactivated"
        session.flush()
        record_event(
            session, name, ser.connection(connection), organization_id=connection.organization_id
        )


def delete_connection(session: Session, connection: Connection, *, actor: str) -> Job:
    """Delete the connection (profiles, mappings, certs cascade); a job recomputes the
    memberships whose roles came from it."""
    data = ser.connection(connection)
    data["state"] = "deleting"
    session.delete(connection)
    session.flush()
    record_event(session, "connection.deleted", data, organization_id=connection.organization_id)
    return start_job(
        session,
        MAPPING_JOB,
        {"organization_id": connection.organization_id, "connection_id": None},
        created_by=actor,
    )


def list_query(
    *, organization_id: str | None, connection_type: str | None, search: str | None
) -> Select[tuple[Connection]]:
    query = select(Connection)
    if organization_id:
        query = query.where(Connection.organization_id == organization_id)
    if connection_type:
        query = query.where(Connection.connection_type == connection_type)
    if search:
        query = query.where(func.lower(Connection.name).contains(search.lower(), autoescape=True))
    return query


# --- IdP signing certificates ---------------------------------------------------------


def _cert_count(session: Session, connection_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).where(SamlIdpSigningCert.connection_id == connection_id)
        )
        or 0
    )


def _add_cert(session: Session, connection: Connection, pem: str) -> SamlIdpSigningCert:
    value = (pem or "").strip()
    if "BEGIN CERTIFICATE" not in value:
        value = f"-----BEGIN CERTIFICATE-----\n{value}\n-----END CERTIFICATE-----"
    try:
        parsed = x509.load_pem_x509_certificate(value.encode())
    except ValueError:
        raise _unprocessable("value", "value must be a PEM-encoded X.509 certificate") from None
    cert = SamlIdpSigningCert(
        id=new_id("saml_idp_signing_cert"),
        connection_id=connection.id,
        value=value,
        not_before=parsed.not_valid_before_utc,
        not_after=parsed.not_valid_after_utc,
        created_at=utcnow(),
    )
    session.add(cert)
    return cert


def add_cert(session: Session, connection: Connection, pem: str) -> SamlIdpSigningCert:
    """Import a certificate ahead of an IdP rotation; the others keep working."""
    cert = _add_cert(session, connection, pem)
    session.flush()
    _refresh_state(session, connection)
    return cert


def certs_of(session: Session, connection_id: str) -> list[SamlIdpSigningCert]:
    query = select(SamlIdpSigningCert).where(SamlIdpSigningCert.connection_id == connection_id)
    return list(session.scalars(query.order_by(SamlIdpSigningCert.id)))


def remove_cert(session: Session, connection: Connection, cert_id: str) -> None:
    cert = session.get(SamlIdpSigningCert, cert_id)
    if cert is None or cert.connection_id != connection.id:
        raise NotFound(f"certificate {cert_id} not found")
    if _cert_count(session, connection.id) <= 1:
        raise BadRequest(
            "the last remaining certificate cannot be deleted", code="last_certificate"
        )
    session.delete(cert)


# --- group-to-role mappings -----------------------------------------------------------


def get_mapping(session: Session, connection_id: str, mapping_id: str) -> SsoGroupRoleMapping:
    mapping = session.get(SsoGroupRoleMapping, mapping_id)
    if mapping is None or mapping.connection_id != connection_id:
        raise NotFound(f"group role mapping {mapping_id} not found")
    return mapping


def _check_mapping(
    session: Session, connection: Connection, group: str, role_slug: str, own: str | None
) -> str:
    value = group.strip()  # matched exactly as the IdP sends it (Entra: object ids)
    if not value:
        raise Unprocessable(
            "group must not be empty", errors=[{"code": "required", "field": "group"}]
        )
    if find_role(session, connection.organization_id, role_slug) is None:
        raise Unprocessable(
            f"role '{role_slug}' is not available in this organization",
            code="role_not_found",
            errors=[{"code": "role_not_found", "field": "role_slug"}],
        )
    other = session.scalar(
        select(SsoGroupRoleMapping.id).where(
            SsoGroupRoleMapping.connection_id == connection.id,
            SsoGroupRoleMapping.group == value,
            SsoGroupRoleMapping.role_slug == role_slug,
        )
    )
    if other is not None and other != own:
        raise Conflict("this group is already mapped to this role", code="mapping_exists")
    return value


def create_mapping(
    session: Session, connection: Connection, *, group: str, role_slug: str, actor: str
) -> tuple[SsoGroupRoleMapping, Job]:
    """Map ``group`` to ``role_slug``; a job recomputes the connection's members."""
    value = _check_mapping(session, connection, group, role_slug, None)
    now = utcnow()
    mapping = SsoGroupRoleMapping(
        id=new_id("group_role_mapping"),
        connection_id=connection.id,
        group=value,
        role_slug=role_slug,
        created_at=now,
        updated_at=now,
    )
    session.add(mapping)
    session.flush()
    return mapping, _mapping_job(session, connection, actor)


def update_mapping(
    session: Session,
    connection: Connection,
    mapping_id: str,
    *,
    group: str | None,
    role_slug: str | None,
    actor: str,
) -> tuple[SsoGroupRoleMapping, Job]:
    mapping = get_mapping(session, connection.id, mapping_id)
    slug = role_slug if role_slug is not None else mapping.role_slug
    mapping.group = _check_mapping(
        session, connection, group if group is not None else mapping.group, slug, mapping.id
    )
    mapping.role_slug, mapping.updated_at = slug, utcnow()
    return mapping, _mapping_job(session, connection, actor)


def delete_mapping(session: Session, connection: Connection, mapping_id: str, *, actor: str) -> Job:
    mapping = get_mapping(session, connection.id, mapping_id)
    session.execute(delete(SsoGroupRoleMapping).where(SsoGroupRoleMapping.id == mapping.id))
    return _mapping_job(session, connection, actor)


def _mapping_job(session: Session, connection: Connection, actor: str) -> Job:
    params = {"organization_id": connection.organization_id, "connection_id": connection.id}
    return start_job(session, MAPPING_JOB, params, created_by=actor)


def mappings_of(session: Session, connection_id: str) -> list[SsoGroupRoleMapping]:
    query = select(SsoGroupRoleMapping).where(SsoGroupRoleMapping.connection_id == connection_id)
    return list(session.scalars(query.order_by(SsoGroupRoleMapping.id)))


# --- redirect URIs --------------------------------------------------------------------


def add_redirect_uri(session: Session, uri: str) -> SsoRedirectUri:
    """Register where ``/sso/authorize`` may send users back: https, or http on loopback
    for development; no fragment (RFC 6749 §3.1.2)."""
    value = uri.strip()
    parts = urlsplit(value)
    loopback = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not (parts.scheme == "https" or loopback) or not parts.netloc or parts.fragment:
        raise _unprocessable("uri", "uri must be an https URL (http only on loopback), no fragment")
    if session.scalar(select(SsoRedirectUri.id).where(SsoRedirectUri.uri == value)) is not None:
        raise Conflict("this redirect URI is already registered", code="redirect_uri_exists")
    row = SsoRedirectUri(id=new_id("redirect_uri"), uri=value, created_at=utcnow())
    session.add(row)
    return row


def remove_redirect_uri(session: Session, redirect_uri_id: str) -> None:
    row = session.get(SsoRedirectUri, redirect_uri_id)
    if row is None:
        raise NotFound(f"redirect URI {redirect_uri_id} not found")
    session.delete(row)


def redirect_uris(session: Session) -> list[SsoRedirectUri]:
    return list(session.scalars(select(SsoRedirectUri).order_by(SsoRedirectUri.id)))
