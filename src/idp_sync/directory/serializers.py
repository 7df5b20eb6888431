"""Directories, directory users and groups in the ``workos`` SDK's shapes (DESIGN §5)."""

from __future__ import annotations

from typing import Any

from idp_sync.directory.models import Directory, DirectoryGroup, DirectoryUser, GroupRoleMapping
from idp_sync.directory.scim.schemas import ENTERPRISE
from idp_sync.wire import iso


def directory(d: Directory, *, active: int, inactive: int, groups: int) -> dict[str, Any]:
    """``workos.directory_sync.models.Directory``."""
    return {
        "object": "directory",
        "id": d.id,
        "organization_id": d.organization_id,
        "external_key": d.id,
        "type": d.type,
        "state": d.state,
        "name": d.name,
        "domain": None,
        "metadata": {"users": {"active": active, "inactive": inactive}, "groups": groups},
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def scim_credentials(base_url: str, directory_id: str, token: str) -> dict[str, Any]:
    """Shown once, when the directory is created or its token rotated."""
    return {"base_url": f"{base_url}/scim/v2/{directory_id}", "bearer_token": token}


def directory_user(u: DirectoryUser, roles: list[str] | None = None) -> dict[str, Any]:
    """``workos.common.models.DirectoryUser`` (event data) with the resolved roles."""
    attrs = u.attributes
    slim = [{"slug": slug} for slug in roles or []]
    return {
        "object": "directory_user",
        "id": u.id,
        "directory_id": u.directory_id,
        "organization_id": u.organization_id,
        "idp_id": u.external_id or u.id,
        "email": u.email,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "name": u.display_name,
        "emails": [_email(e) for e in attrs.get("emails") or [] if isinstance(e, dict)],
        "job_title": attrs.get("title") if isinstance(attrs.get("title"), str) else None,
        "username": u.user_name,
        "state": "active" if u.active and u.deleted_at is None else "inactive",
        "custom_attributes": _custom(attrs),
        "raw_attributes": attrs,
        "role": slim[0] if slim else None,
        "roles": slim,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
    }


def directory_user_with_groups(
    u: DirectoryUser, roles: list[str], groups: list[DirectoryGroup]
) -> dict[str, Any]:
    return {**directory_user(u, roles), "groups": [directory_group(g) for g in groups]}


def directory_group(g: DirectoryGroup) -> dict[str, Any]:
    """``workos.common.models.DirectoryGroup``."""
    return {
        "object": "directory_group",
        "id": g.id,
        "idp_id": g.external_id or g.id,
        "directory_id": g.directory_id,
        "organization_id": g.organization_id,
        "name": g.display_name,
        "raw_attributes": g.attributes,
        "created_at": iso(g.created_at),
        "updated_at": iso(g.updated_at),
    }


def membership_event(
    u: DirectoryUser, g: DirectoryGroup, group_data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``DsyncGroupUserAddedData`` / ``DsyncGroupUserRemovedData``; ``group_data``: the
    group already serialised, when one request writes thousands of these."""
    group = group_data if group_data is not None else directory_group(g)
    return {"directory_id": g.directory_id, "user": directory_user(u), "group": group}


def mapping(m: GroupRoleMapping) -> dict[str, Any]:
    return {
        "object": "group_role_mapping",
        "id": m.id,
        "directory_id": m.directory_id,
        "group": m.group,
        "role_slug": m.role_slug,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def _email(e: dict[str, Any]) -> dict[str, Any]:
    return {"primary": e.get("primary"), "type": e.get("type"), "value": e.get("value")}


def _custom(attrs: dict[str, Any]) -> dict[str, Any]:
    """The enterprise extension's attributes, as WorkOS exposes them (``manager`` -> id)."""
    ext = next((v for k, v in attrs.items() if k.lower() == ENTERPRISE.lower()), None)
    if not isinstance(ext, dict):
        return {}
    custom = {k: v for k, v in ext.items() if k != "manager"}
    manager = ext.get("manager")
    if isinstance(manager, dict) and manager.get("value"):
        custom["manager_id"] = manager["value"]
    return custom
