"""Use cases for permissions, roles and authorization settings (DESIGN §2).

Services decide; they never commit. The caller (an HTTP unit of work, a task) owns the
transaction, so a change, its events and the work it triggers commit together.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.errors import Conflict, NotFound, Unprocessable
from idp_sync.events.services import record_event
from idp_sync.ids import new_id
from idp_sync.rbac import serializers as ser
from idp_sync.rbac.models import (
    ENV_SCOPE,
    EnvironmentSettings,
    OrganizationAuthorizationSettings,
    Permission,
    Role,
    RolePermission,
)

PERMISSION_SLUG = re.compile(r"^[a-z0-9\-.:_*]{1,100}$")
ROLE_SLUG = re.compile(r"^[a-z0-9][a-z0-9\-_]{0,99}$")
ORG_ROLE_PREFIX = "org-"


# --- settings -------------------------------------------------------------------------


def environment_settings(session: Session, *, for_update: bool = False) -> EnvironmentSettings:
    """The environment's settings row (seeded by the first migration)."""
    if not for_update:
        row = session.get(EnvironmentSettings, 1)  # the identity map answers repeat reads
        if row is None:
            raise RuntimeError("environment settings missing: run `idp-sync db upgrade`")
        return row
    query = select(EnvironmentSettings).where(EnvironmentSettings.id == 1).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one()


def organization_settings(
    session: Session, organization_id: str, *, create: bool = False
) -> OrganizationAuthorizationSettings | None:
    row = session.get(OrganizationAuthorizationSettings, organization_id)
    if row is None and create:
        row = OrganizationAuthorizationSettings(organization_id=organization_id)
        session.add(row)
    return row


# --- permissions ----------------------------------------------------------------------


def validate_permission_slug(slug: str) -> None:
    if not PERMISSION_SLUG.fullmatch(slug):
        raise Unprocessable(
            "permission slug may contain only lowercase letters, digits and - . : _ *",
            errors=[{"code": "invalid_slug", "field": "slug"}],
        )


def create_permission(
    session: Session, *, slug: str, name: str, description: str | None
) -> Permission:
    validate_permission_slug(slug)
    if session.scalar(select(Permission.id).where(Permission.slug == slug)):
        raise Conflict(f"a permission with slug '{slug}' already exists", code="slug_taken")
    now = utcnow()
    permission = Permission(
        id=new_id("permission"),
        slug=slug,
        name=name,
        description=description,
        created_at=now,
        updated_at=now,
    )
    session.add(permission)
    session.flush()
    record_event(session, "permission.created", ser.permission(permission))
    return permission


def get_permission(session: Session, slug: str) -> Permission:
    permission = session.scalar(select(Permission).where(Permission.slug == slug))
    if permission is None:
        raise NotFound(f"permission '{slug}' not found")
    return permission


def update_permission(
    session: Session, slug: str, *, name: str | None, description: str | None, set_description: bool
) -> Permission:
    permission = get_permission(session, slug)
    if name is not None:
        permission.name = name
    if set_description:
        permission.description = description
    permission.updated_at = utcnow()
    record_event(session, "permission.updated", ser.permission(permission))
    return permission


def delete_permission(session: Session, slug: str) -> None:
    permission = get_permission(session, slug)
    if permission.system:
        raise Conflict("system permissions cannot be deleted", code="system_permission")
    data = ser.permission(permission)
    session.execute(delete(RolePermission).where(RolePermission.permission_id == permission.id))
    session.delete(permission)
    record_event(session, "permission.deleted", data)


def permissions_by_slug(session: Session, slugs: Iterable[str]) -> list[Permission]:
    wanted = list(dict.fromkeys(slugs))
    found = {
        p.slug: p for p in session.scalars(select(Permission).where(Permission.slug.in_(wanted)))
    }
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise Unprocessable(
            f"unknown permission(s): {', '.join(missing)}",
            errors=[{"code": "permission_not_found", "field": "permissions"}],
        )
    return [found[slug] for slug in wanted]


# --- roles ----------------------------------------------------------------------------


def live_roles(query_scope: Sequence[str]) -> list[ColumnElement[bool]]:
    """Conditions selecting usable roles (not being deleted) in the given scopes."""
    return [Role.scope.in_(query_scope), Role.deleting_at.is_(None)]


def find_role(session: Session, organization_id: str | None, slug: str) -> Role | None:
    """The usable role ``slug`` as seen from ``organization_id`` (env roles, then its own)."""
    scopes = [ENV_SCOPE] if organization_id is None else [ENV_SCOPE, organization_id]
    return session.scalar(select(Role).where(*live_roles(scopes), Role.slug == slug))


def get_environment_role(session: Session, slug: str) -> Role:
    role = session.scalar(select(Role).where(*live_roles([ENV_SCOPE]), Role.slug == slug))
    if role is None:
        raise NotFound(f"role '{slug}' not found")
    return role


def get_organization_role(session: Session, organization_id: str, slug: str) -> Role:
    """A role usable in the organization: an environment role or one of its own."""
    role = find_role(session, organization_id, slug)
    if role is None:
        raise NotFound(f"role '{slug}' not found in organization {organization_id}")
    return role


def get_custom_role(session: Session, organization_id: str, slug: str) -> Role:
    role = session.scalar(select(Role).where(*live_roles([organization_id]), Role.slug == slug))
    if role is None:
        raise NotFound(f"organization role '{slug}' not found in {organization_id}")
    return role


def create_environment_role(
    session: Session, *, slug: str, name: str, description: str | None
) -> Role:
    if not ROLE_SLUG.fullmatch(slug) or slug.startswith(ORG_ROLE_PREFIX):
        raise Unprocessable(
            "role slug must be lowercase letters, digits, '-' or '_', not starting with 'org-'",
            errors=[{"code": "invalid_slug", "field": "slug"}],
        )
    if session.scalar(select(Role.id).where(Role.scope == ENV_SCOPE, Role.slug == slug)):
        raise Conflict(f"a role with slug '{slug}' already exists", code="slug_taken")
    settings = environment_settings(session, for_update=True)
    role = _new_role(ENV_SCOPE, None, slug, name, description)
    session.add(role)
    # DESIGN §2: a new role enters the priority order at the bottom.
    settings.priority_order = [*settings.priority_order, slug]
    session.flush()
    record_event(session, "role.created", ser.role_event(role))
    return role


def create_organization_role(
    session: Session, organization_id: str, *, slug: str | None, name: str, description: str | None
) -> Role:
    if slug is None:
        slug = _generated_org_slug(name)
    elif not slug.startswith(ORG_ROLE_PREFIX) or not ROLE_SLUG.fullmatch(slug):
        raise Unprocessable(
            "organization role slugs begin with 'org-' and contain only lowercase letters, "
            "digits, '-' and '_'",
            errors=[{"code": "invalid_slug", "field": "slug"}],
        )
    taken = select(Role.id).where(Role.scope == organization_id, Role.slug == slug)
    if session.scalar(taken):
        raise Conflict(f"a role with slug '{slug}' already exists", code="slug_taken")
    role = _new_role(organization_id, organization_id, slug, name, description)
    session.add(role)
    session.flush()
    record_event(
        session,
        "organization_role.created",
        ser.org_role_event(role),
        organization_id=organization_id,
    )
    return role


def _new_role(scope: str, org_id: str | None, slug: str, name: str, desc: str | None) -> Role:
    now = utcnow()
    return Role(
        id=new_id("role"),
        scope=scope,
        organization_id=org_id,
        slug=slug,
        name=name,
        description=desc,
        created_at=now,
        updated_at=now,
        permissions=[],
    )


def _generated_org_slug(name: str) -> str:
    """As WorkOS documents: derived from the name, with a random suffix."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "role"
    return f"{ORG_ROLE_PREFIX}{base}-{secrets.token_hex(3)}"


def update_role(
    session: Session,
    role: Role,
    *,
    name: str | None,
    description: str | None,
    set_description: bool,
) -> Role:
    if name is not None:
        role.name = name
    if set_description:
        role.description = description
    _touch_role(session, role)
    return role


def add_role_permission(session: Session, role: Role, permission_slug: str) -> Role:
    (permission,) = permissions_by_slug(session, [permission_slug])
    if permission not in role.permissions:
        role.permissions.append(permission)
        _touch_role(session, role)
    return role


def set_role_permissions(session: Session, role: Role, permission_slugs: list[str]) -> Role:
    role.permissions = permissions_by_slug(session, permission_slugs)
    _touch_role(session, role)
    return role


def remove_role_permission(session: Session, role: Role, permission_slug: str) -> None:
    permission = get_permission(session, permission_slug)
    if permission not in role.permissions:
        raise NotFound(f"role '{role.slug}' does not have permission '{permission_slug}'")
    role.permissions.remove(permission)
    _touch_role(session, role)


def _touch_role(session: Session, role: Role) -> None:
    role.updated_at = utcnow()
    session.flush()
    if role.organization_id is None:
        record_event(session, "role.updated", ser.role_event(role))
    else:
        record_event(
            session,
            "organization_role.updated",
            ser.org_role_event(role),
            organization_id=role.organization_id,
        )


def environment_roles(session: Session) -> list[Role]:
    """Live environment roles in priority order."""
    roles = session.scalars(select(Role).where(*live_roles([ENV_SCOPE]))).all()
    order = environment_settings(session).priority_order
    return sort_by_priority(roles, order)


def organization_roles(session: Session, organization_id: str) -> list[Role]:
    """Environment roles and the organization's own, in the organization's priority order."""
    roles = session.scalars(select(Role).where(*live_roles([ENV_SCOPE, organization_id]))).all()
    order = effective_priority_order(session, organization_id, roles)
    return sort_by_priority(roles, order)


def sort_by_priority(roles: Iterable[Role], order: Sequence[str]) -> list[Role]:
    rank = {slug: i for i, slug in enumerate(order)}
    return sorted(roles, key=lambda r: (rank.get(r.slug, len(rank)), r.id))


def effective_priority_order(
    session: Session, organization_id: str | None, roles: Iterable[Role] | None = None
) -> list[str]:
    """Highest first: the environment order, then the organization's roles by creation.

    An organization with its own ``priority_order`` uses it; roles missing from it (added
    later) follow in the default order, and slugs of roles that no longer exist are dropped.
    """
    env_order = environment_settings(session).priority_order
    if organization_id is None:
        return list(env_order)
    if roles is None:
        roles = session.scalars(select(Role).where(*live_roles([ENV_SCOPE, organization_id])))
    org = organization_settings(session, organization_id)
    return merge_priority(env_order, list(roles), org.priority_order if org is not None else None)


def merge_priority(
    env_order: Sequence[str], roles: Sequence[Role], preferred: Sequence[str] | None
) -> list[str]:
    """The rule of ``effective_priority_order`` on loaded data (no I/O)."""
    own = [r.slug for r in sorted(roles, key=lambda r: r.id) if r.organization_id is not None]
    default_order = [*env_order, *own]
    existing = {r.slug for r in roles}
    merged = [s for s in preferred or [] if s in existing]
    return merged + [s for s in default_order if s not in merged and s in existing]


def set_priority_order(session: Session, slugs: list[str]) -> None:
    settings = environment_settings(session, for_update=True)
    current = [r.slug for r in environment_roles(session)]
    if sorted(slugs) != sorted(current) or len(set(slugs)) != len(slugs):
        raise Unprocessable(
            "priority_order must list every environment role exactly once",
            errors=[{"code": "invalid_priority_order", "field": "priority_order"}],
        )
    settings.priority_order = list(slugs)


def set_org_priority_order(session: Session, organization_id: str, slugs: list[str]) -> None:
    current = [r.slug for r in organization_roles(session, organization_id)]
    if sorted(slugs) != sorted(current) or len(set(slugs)) != len(slugs):
        raise Unprocessable(
            "priority_order must list every role of the organization exactly once",
            errors=[{"code": "invalid_priority_order", "field": "priority_order"}],
        )
    row = organization_settings(session, organization_id, create=True)
    assert row is not None
    row.priority_order = list(slugs)
    row.updated_at = utcnow()


def ensure_deletable(session: Session, role: Role) -> None:
    """DESIGN §2: the default role (environment's, or an organization's override) stays."""
    if (
        role.organization_id is None
        and environment_settings(session).default_role_slug == role.slug
    ):
        raise Conflict(
            f"'{role.slug}' is the default role and cannot be deleted; make another "
            "role the default first",
            code="default_role_cannot_be_deleted",
        )
    overriding = session.scalar(
        select(OrganizationAuthorizationSettings.organization_id).where(
            OrganizationAuthorizationSettings.default_role_id == role.id
        )
    )
    if overriding is not None:
        raise Conflict(
            f"'{role.slug}' is the default role of organization {overriding} and cannot be "
            "deleted; change that organization's default first",
            code="default_role_cannot_be_deleted",
        )


def begin_role_deletion(session: Session, role: Role) -> None:
    """Mark the role as being deleted: from now on it is never resolved nor assignable."""
    ensure_deletable(session, role)
    role.deleting_at = utcnow()
    role.updated_at = role.deleting_at


def finish_role_deletion(session: Session, role_id: str) -> None:
    """Remove the role once no membership holds it; its priority slot and mappings go too."""
    role = session.get(Role, role_id)
    if role is None:
        return
    if role.organization_id is None:
        data = ser.role_event(role)
        settings = environment_settings(session, for_update=True)
        settings.priority_order = [s for s in settings.priority_order if s != role.slug]
        session.delete(role)
        record_event(session, "role.deleted", data)
    else:
        data = ser.org_role_event(role)
        org = organization_settings(session, role.organization_id)
        if org is not None and org.priority_order:
            org.priority_order = [s for s in org.priority_order if s != role.slug]
        session.delete(role)
        record_event(
            session, "organization_role.deleted", data, organization_id=role.organization_id
        )
