"""Memberships as ``workos...OrganizationMembership`` and its event data expect them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from idp_sync.memberships.models import OrganizationMembership
from idp_sync.users.serializers import user
from idp_sync.wire import iso


def event_data(m: OrganizationMembership) -> dict[str, Any]:
    """``OrganizationMembershipCreatedData``: the membership without the embedded user."""
    return membership_data(
        id=m.id,
        user_id=m.user_id,
        organization_id=m.organization_id,
        status=m.status,
        role_slugs=[r.role_slug for r in m.roles],
        directory_managed=m.directory_managed,
        custom_attributes=m.custom_attributes,
        created_at=m.created_at,
        updated_at=m.updated_at,
    )


def membership_data(
    *,
    id: str,
    user_id: str,
    organization_id: str,
    status: str,
    role_slugs: Sequence[str],
    directory_managed: bool,
    custom_attributes: Mapping[str, Any] | None,
    created_at: dt.datetime,
    updated_at: dt.datetime,
) -> dict[str, Any]:
    """``event_data`` from plain values (the paths that write without the ORM)."""
    roles = [{"slug": slug} for slug in role_slugs]
    return {
        "object": "organization_membership",
        "id": id,
        "user_id": user_id,
        "organization_id": organization_id,
        "status": status,
        "role": roles[0] if roles else None,
        "roles": roles,
        "directory_managed": directory_managed,
        "custom_attributes": dict(custom_attributes or {}),
        "created_at": iso(created_at),
        "updated_at": iso(updated_at),
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
