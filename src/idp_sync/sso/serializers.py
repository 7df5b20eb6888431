"""Wire shapes of SSO objects, as the ``workos`` SDK's models (``workos/sso/models``) read them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from idp_sync.sso.models import (
    Connection,
    SamlIdpSigningCert,
    SsoGroupRoleMapping,
    SsoRedirectUri,
)
from idp_sync.wire import iso

if TYPE_CHECKING:
    from idp_sync.sso.attributes import SignedProfile
    from idp_sync.sso.flow import ConnectionConfig


def connection(c: Connection) -> dict[str, Any]:
    """``Connection`` (and ``ConnectionActivatedData`` for events: external_key, status)."""
    return {
        "object": "connection",
        "id": c.id,
        "organization_id": c.organization_id,
        "connection_type": c.connection_type,
        "name": c.name,
        "state": c.state,
        "status": "linked" if c.state == "active" else "unlinked",
        "external_key": c.id,
        "external_id": c.external_id,
        "domains": [],
        "saml": {
            "idp_entity_id": c.idp_entity_id,
            "idp_sso_url": c.idp_sso_url,
            "sp_entity_id": c.sp_entity_id,
            "acs_url": c.acs_url,
            "allow_idp_initiated": c.allow_idp_initiated,
            "allow_sha1": c.allow_sha1,
        },
        "attribute_maps": c.attribute_maps,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


def cert(c: SamlIdpSigningCert) -> dict[str, Any]:
    return {
        "object": "saml_idp_signing_certificate",
        "id": c.id,
        "value": c.value,
        "not_before": iso(c.not_before),
        "not_after": iso(c.not_after),
        "created_at": iso(c.created_at),
    }


def mapping(m: SsoGroupRoleMapping) -> dict[str, Any]:
    return {
        "object": "group_role_mapping",
        "id": m.id,
        "connection_id": m.connection_id,
        "group": m.group,
        "role_slug": m.role_slug,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def profile(
    profile_id: str,
    c: ConnectionConfig,
    signed: SignedProfile,
    roles: list[str],
    groups: list[str],
) -> dict[str, Any]:
    """``Profile`` with the role(s) resolved at sign-in (``SlimRole`` = ``{"slug"}``);
    ``groups`` are the sign-in's, or the last known ones after an Entra groups overage."""
    return {
        "object": "profile",
        "id": profile_id,
        "organization_id": c.organization_id,
        "connection_id": c.id,
        "connection_type": c.connection_type,
        "idp_id": signed.idp_id,
        "email": signed.email,
        "first_name": signed.first_name,
        "last_name": signed.last_name,
        "name": signed.name,
        "role": {"slug": roles[0]} if roles else None,
        "roles": [{"slug": slug} for slug in roles],
        "groups": groups,
        "custom_attributes": {},
        "raw_attributes": signed.raw_attributes,
    }


def sso_event(
    *,
    status: str,
    organization_id: str | None,
    connection_id: str | None,
    ip_address: str | None,
    user_agent: str | None,
    user_id: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """``AuthenticationSSOSucceededData`` / ``AuthenticationSSOFailedData`` (without error)."""
    return {
        "type": "sso",
        "status": status,
        "ip_address": ip_address,
        "user_agent": user_agent,
        "user_id": user_id,
        "email": email,
        "sso": {
            "organization_id": organization_id,
            "connection_id": connection_id,
            "session_id": None,
        },
    }


def redirect_uri(r: SsoRedirectUri) -> dict[str, Any]:
    return {"object": "redirect_uri", "id": r.id, "uri": r.uri, "created_at": iso(r.created_at)}
