"""RBAC objects as the ``workos`` SDK's models expect them (its ``models/`` are the contract)."""

from __future__ import annotations

from typing import Any

from idp_sync.rbac.models import EnvironmentSettings, Permission, Role
from idp_sync.wire import iso


def permission(p: Permission) -> dict[str, Any]:
    """``workos.common.models.AuthorizationPermission``."""
    return {
        "object": "permission",
        "id": p.id,
        "slug": p.slug,
        "name": p.name,
        "description": p.description,
        "system": p.system,
        "resource_type_slug": p.resource_type_slug,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def role(r: Role) -> dict[str, Any]:
    """``workos.authorization.models.Role``."""
    return {
        "object": "role",
        "id": r.id,
        "slug": r.slug,
        "name": r.name,
        "description": r.description,
        "type": r.type,
        "resource_type_slug": r.resource_type_slug,
        "permissions": [p.slug for p in r.permissions],
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def role_event(r: Role) -> dict[str, Any]:
    """``RoleCreatedData`` and friends: the role, without id and type."""
    return {
        "object": "role",
        "slug": r.slug,
        "name": r.name,
        "description": r.description,
        "resource_type_slug": r.resource_type_slug,
        "permissions": [p.slug for p in r.permissions],
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def org_role_event(r: Role) -> dict[str, Any]:
    """``OrganizationRoleCreatedData`` and friends."""
    return {**role_event(r), "object": "organization_role", "organization_id": r.organization_id}


def environment_settings(s: EnvironmentSettings, job: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "object": "authorization_settings",
        "default_role_slug": s.default_role_slug,
        "multiple_roles_enabled": s.multiple_roles_enabled,
        "priority_order": list(s.priority_order),
        "updated_at": iso(s.updated_at),
        "job": job,
    }
