"""Configuration changes that re-resolve many memberships, and so start jobs (DESIGN §4)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.errors import Unprocessable
from idp_sync.jobs.models import Job
from idp_sync.jobs.services import serialize as serialize_job
from idp_sync.jobs.services import start_job
from idp_sync.organizations.services import get_organization
from idp_sync.rbac import services
from idp_sync.rbac.models import Role
from idp_sync.wire import iso


def update_environment_settings(
    session: Session, changes: dict[str, Any], *, actor: str
) -> tuple[dict[str, Any], list[Job]]:
    """Apply ``changes`` to the environment settings; start a job for each that needs one."""
    settings = services.environment_settings(session, for_update=True)
    jobs: list[Job] = []
    slug = changes.get("default_role_slug")
    if slug is not None and slug != settings.default_role_slug:
        services.get_environment_role(session, slug)  # 404 unless a live environment role
        settings.default_role_slug = slug
        jobs.append(
            start_job(session, "default_role_change", {"default_role_slug": slug}, created_by=actor)
        )
    order = changes.get("priority_order")
    if order is not None and list(order) != settings.priority_order:
        services.set_priority_order(session, list(order))
        jobs.append(start_job(session, "priority_order_change", {}, created_by=actor))
    multiple = changes.get("multiple_roles_enabled")
    if multiple is not None and multiple != settings.multiple_roles_enabled:
        settings.multiple_roles_enabled = multiple
        # On: IdP-sourced memberships gain every matched role. Off: each keeps its top one.
        kind = "priority_order_change" if multiple else "multiple_roles_disabled"
        jobs.append(
            start_job(session, kind, {"multiple_roles_enabled": multiple}, created_by=actor)
        )
    if jobs:
        settings.updated_at = utcnow()
    return environment_settings_body(session), jobs


def environment_settings_body(session: Session) -> dict[str, Any]:
    settings = services.environment_settings(session)
    return {
        "object": "authorization_settings",
        "default_role_slug": settings.default_role_slug,
        "multiple_roles_enabled": settings.multiple_roles_enabled,
        "priority_order": [r.slug for r in services.environment_roles(session)],
        "updated_at": iso(settings.updated_at),
    }


def organization_settings_body(session: Session, organization_id: str) -> dict[str, Any]:
    get_organization(session, organization_id)
    row = services.organization_settings(session, organization_id)
    override = session.get(Role, row.default_role_id) if row and row.default_role_id else None
    return {
        "object": "organization_authorization_settings",
        "organization_id": organization_id,
        "default_role_slug": override.slug if override else None,
        "effective_default_role_slug": (
            override.slug if override else services.environment_settings(session).default_role_slug
        ),
        "priority_order": [r.slug for r in services.organization_roles(session, organization_id)],
        "updated_at": iso(row.updated_at) if row else None,
    }


def update_organization_settings(
    session: Session, organization_id: str, changes: dict[str, Any], *, actor: str
) -> tuple[dict[str, Any], list[Job]]:
    """Set or clear (``null``) the organization's default role; set its priority order."""
    get_organization(session, organization_id)
    row = services.organization_settings(session, organization_id, create=True)
    assert row is not None
    jobs: list[Job] = []
    if "default_role_slug" in changes:
        slug = changes["default_role_slug"]
        role_id = None
        if slug is not None:
            role = services.find_role(session, organization_id, slug)
            if role is None:
                raise Unprocessable(
                    f"role '{slug}' is not available in organization {organization_id}",
                    code="role_not_found",
                    errors=[{"code": "role_not_found", "field": "default_role_slug"}],
                )
            role_id = role.id
        if role_id != row.default_role_id:
            row.default_role_id = role_id
            params = {"organization_id": organization_id, "default_role_slug": slug}
            jobs.append(start_job(session, "default_role_change", params, created_by=actor))
    order = changes.get("priority_order")
    if order is not None:
        services.set_org_priority_order(session, organization_id, list(order))
        params = {"organization_id": organization_id}
        jobs.append(start_job(session, "priority_order_change", params, created_by=actor))
    row.updated_at = utcnow()
    session.flush()
    return organization_settings_body(session, organization_id), jobs


def delete_role(session: Session, role: Role, *, actor: str) -> Job:
    """Start deleting ``role`` (DESIGN §3): at once unusable, then reassigned by a job.

    Single-role mode: its holders fall back to their next source (usually the default).
    Multiple-roles mode: it is removed and their other roles stay. The role row and its
    priority slot go when every membership is right, with ``role.deleted`` (or
    ``organization_role.deleted``).
    """
    services.begin_role_deletion(session, role)
    params = {"role_id": role.id, "role_slug": role.slug, "organization_id": role.organization_id}
    return start_job(session, "role_deletion", params, created_by=actor)


def with_jobs(body: dict[str, Any], jobs: list[Job]) -> dict[str, Any]:
    serialized = [serialize_job(job) for job in jobs]
    return {**body, "job": serialized[0] if serialized else None, "jobs": serialized}
