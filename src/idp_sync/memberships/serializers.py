"""Memberships as ``workos...OrganizationMembership`` and its event data expect them."""

from __future__ import annotations

from typing import Any

from idp_sync.memberships.models import OrganizationMembership
from idp_sync.users.serializers import user
from idp_sync.wire import iso


def event_data(m: OrganizationMembership) -> dict[str, Any]:
    """``OrganizationMembershipCreatedData``: the membership without the embedded user."""
    roles = [{"slug": r.role_slug} for r in m.roles]
    return {
        "object": "organization_membership",
        "id": m.id,
        "user_id": m.user_id,
        "organization_id": m.organization_id,
        "status": m.status,
        "role": roles[0] if roles else None,
        "roles": roles,
        "directory_managed": m.directory_managed,
        "custom_attributes": dict(m.custom_attributes or {}),
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def membership(m: OrganizationMembership, organization_name: str | None = None) -> dict[str, Any]:
    """The API object: the event data plus the full ``user`` (DESIGN §5)."""
    return {**event_data(m), "user": user(m.user), "organization_name": organization_name}


def explanation(m: OrganizationMembership) -> dict[str, Any]:
    """Why the membership has its roles (provenance from the resolver, DESIGN §3)."""
    provenance = dict(m.provenance or {})
    return {
        "object": "role_explanation",
        "organization_membership_id": m.id,
        "roles": [r.role_slug for r in m.roles],
        "source": provenance.get("source", m.role_source),
        "uses_default": provenance.get("uses_default", m.uses_default),
        "matched_groups": provenance.get("matched_groups", []),
        "mapping_ids": provenance.get("mapping_ids", []),
        "api_roles": [r.role_slug for r in m.api_roles],
    }
