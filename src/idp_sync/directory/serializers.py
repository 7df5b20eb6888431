"""Directories, directory users and groups in the ``workos`` SDK's shapes (DESIGN §5)."""

from __future__ import annotations

from typing import Any

from idp_sync.directory.models import Directory, DirectoryGroup, DirectoryUser, GroupRoleMapping
from idp_sync.directory.scim.schemas import ENTERPRISE
from idp_sync.wire import iso, iso_sql


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


# --- the same objects rendered by PostgreSQL ---------------------------------------------
# For statements that write thousands of events without a round trip through Python (a
# large member PATCH on the event loop). Each mirrors the function above it rule for rule;
# a test renders awkward rows both ways and compares them.


def directory_user_json_sql(alias: str) -> str:
    """``directory_user(u)`` (no roles, as events carry it) as a ``jsonb`` expression over
    the ``directory_users`` row ``alias``."""
    u, a = alias, f"{alias}.attributes"
    return (
        "jsonb_build_object("
        f"'object', 'directory_user', 'id', {u}.id, 'directory_id', {u}.directory_id, "
        f"'organization_id', {u}.organization_id, "
        f"'idp_id', coalesce(nullif({u}.external_id, ''), {u}.id), 'email', {u}.email, "
        f"'first_name', {u}.first_name, 'last_name', {u}.last_name, "
        f"'name', {u}.display_name, 'emails', {_emails_sql(a)}, "
        f"'job_title', CASE WHEN jsonb_typeof({a} -> 'title') = 'string' "
        f"THEN {a} -> 'title' END, "
        f"'username', {u}.user_name, "
        f"'state', CASE WHEN {u}.active AND {u}.deleted_at IS NULL "
        "THEN 'active' ELSE 'inactive' END, "
        f"'custom_attributes', {_custom_sql(a)}, 'raw_attributes', {a}, "
        "'role', NULL, 'roles', CAST('[]' AS jsonb), "
        f"'created_at', {iso_sql(f'{u}.created_at')}, "
        f"'updated_at', {iso_sql(f'{u}.updated_at')})"
    )


def directory_group_json_sql(alias: str) -> str:
    """``directory_group(g)`` as a ``jsonb`` expression over the row ``alias``."""
    g = alias
    return (
        "jsonb_build_object("
        f"'object', 'directory_group', 'id', {g}.id, "
        f"'idp_id', coalesce(nullif({g}.external_id, ''), {g}.id), "
        f"'directory_id', {g}.directory_id, 'organization_id', {g}.organization_id, "
        f"'name', {g}.display_name, 'raw_attributes', {g}.attributes, "
        f"'created_at', {iso_sql(f'{g}.created_at')}, "
        f"'updated_at', {iso_sql(f'{g}.updated_at')})"
    )


def _emails_sql(attrs: str) -> str:
    """``_email`` of each object in ``emails`` when it is an array; ``[]`` otherwise."""
    e = "_em.e"
    item = ", ".join(f"'{k}', {e} -> '{k}'" for k in ("primary", "type", "value"))
    return (
        f"CASE WHEN jsonb_typeof({attrs} -> 'emails') = 'array' THEN coalesce(("  # noqa: S608 (aliases, no values)
        f"SELECT jsonb_agg(jsonb_build_object({item}) ORDER BY _em.i) "
        f"FROM jsonb_array_elements({attrs} -> 'emails') WITH ORDINALITY AS _em (e, i) "
        f"WHERE jsonb_typeof({e}) = 'object'), CAST('[]' AS jsonb)) "
        "ELSE CAST('[]' AS jsonb) END"
    )


def _custom_sql(attrs: str) -> str:
    """``_custom``: the first key naming the enterprise extension in any case (``jsonb``
    keeps one order, the one Python reads), less ``manager``, plus ``manager_id`` when the
    manager's ``value`` is truthy as Python sees it. The extension is looked up once."""
    urn = ENTERPRISE.lower().replace(":", "\\:")
    ext, value = "_ext.v", "_ext.v -> 'manager' -> 'value'"
    truthy = (
        f"CASE jsonb_typeof({value}) WHEN 'string' THEN {value} <> CAST('\"\"' AS jsonb) "
        f"WHEN 'number' THEN CAST({value} AS numeric) <> 0 "
        f"WHEN 'boolean' THEN CAST({value} AS boolean) "
        f"WHEN 'array' THEN jsonb_array_length({value}) > 0 "
        f"WHEN 'object' THEN {value} <> CAST('{{}}' AS jsonb) ELSE false END"
    )
    return (
        f"(SELECT CASE WHEN jsonb_typeof({ext}) = 'object' THEN ({ext} - 'manager') || "  # noqa: S608
        f"CASE WHEN jsonb_typeof({ext} -> 'manager') = 'object' AND {truthy} "
        f"THEN jsonb_build_object('manager_id', {value}) ELSE CAST('{{}}' AS jsonb) END "
        "ELSE CAST('{}' AS jsonb) END "
        f"FROM (SELECT (SELECT _kv.value FROM jsonb_each({attrs}) WITH ORDINALITY "
        f"AS _kv (key, value, i) WHERE lower(_kv.key) = '{urn}' ORDER BY _kv.i LIMIT 1) "
        "AS v) AS _ext)"
    )


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
