"""HTTP: permissions, environment roles, organization roles, authorization settings.

Paths and shapes follow the ``workos`` SDK's ``authorization`` module; the settings
endpoints are ours, in the same style (DESIGN §5).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.errors import Unprocessable
from idp_sync.jobs.models import Job
from idp_sync.jobs.preview import dry_run as preview
from idp_sync.jobs.services import serialize as serialize_job
from idp_sync.organizations.services import get_organization
from idp_sync.rbac import configuration, schemas, services
from idp_sync.rbac import serializers as ser
from idp_sync.rbac.models import Permission
from idp_sync.wire import PageParams, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["authorization"])
SessionDep = Annotated[Session, Depends(session_of)]
PageDep = Annotated[PageParams, Depends(PageParams)]


def _immutable_slug(body: schemas.NamedUpdate, slug: str) -> None:
    if body.slug is not None and body.slug != slug:
        raise Unprocessable("slugs are immutable", errors=[{"code": "immutable", "field": "slug"}])


def _actor(request: Request) -> str:
    return f"api_key:{request.state.api_key_id}"


# --- permissions ----------------------------------------------------------------------


@router.post("/authorization/permissions", status_code=201)
def create_permission(body: schemas.PermissionCreate, session: SessionDep) -> JSONResponse:
    permission = services.create_permission(
        session, slug=body.slug, name=body.name, description=body.description
    )
    return respond(ser.permission(permission), 201)


@router.get("/authorization/permissions")
def list_permissions(session: SessionDep, page: PageDep) -> JSONResponse:
    rows, meta = paginate(session, select(Permission), Permission.id, page)
    return respond(list_body([ser.permission(p) for p in rows], meta))


@router.get("/authorization/permissions/{slug}")
def get_permission(slug: str, session: SessionDep) -> JSONResponse:
    return respond(ser.permission(services.get_permission(session, slug)))


@router.patch("/authorization/permissions/{slug}")
def update_permission(slug: str, body: schemas.NamedUpdate, session: SessionDep) -> JSONResponse:
    _immutable_slug(body, slug)
    permission = services.update_permission(
        session,
        slug,
        name=body.name,
        description=body.description,
        set_description="description" in body.model_fields_set,
    )
    return respond(ser.permission(permission))


@router.delete("/authorization/permissions/{slug}", status_code=204)
def delete_permission(slug: str, session: SessionDep) -> Response:
    services.delete_permission(session, slug)
    return Response(status_code=204)


# --- environment roles ----------------------------------------------------------------


@router.post("/authorization/roles", status_code=201)
def create_environment_role(body: schemas.RoleCreate, session: SessionDep) -> JSONResponse:
    role = services.create_environment_role(
        session, slug=body.slug, name=body.name, description=body.description
    )
    return respond(ser.role(role), 201)


@router.get("/authorization/roles")
def list_environment_roles(session: SessionDep) -> JSONResponse:
    roles = services.environment_roles(session)
    return respond({"object": "list", "data": [ser.role(r) for r in roles]})


@router.get("/authorization/roles/{slug}")
def get_environment_role(slug: str, session: SessionDep) -> JSONResponse:
    return respond(ser.role(services.get_environment_role(session, slug)))


@router.patch("/authorization/roles/{slug}")
def update_environment_role(
    slug: str, body: schemas.NamedUpdate, session: SessionDep
) -> JSONResponse:
    _immutable_slug(body, slug)
    role = services.update_role(
        session,
        services.get_environment_role(session, slug),
        name=body.name,
        description=body.description,
        set_description="description" in body.model_fields_set,
    )
    return respond(ser.role(role))


@router.delete("/authorization/roles/{slug}", status_code=202)
def delete_environment_role(
    slug: str, request: Request, session: SessionDep, dry_run: bool = False
) -> JSONResponse:
    """Ours (WorkOS has no API for it): 202 with the job that reassigns its holders."""
    role = services.get_environment_role(session, slug)
    actor = _actor(request)
    if dry_run:
        return respond(
            preview(session, lambda: [configuration.delete_role(session, role, actor=actor)])
        )
    job = configuration.delete_role(session, role, actor=actor)
    return respond(serialize_job(job), 202)


@router.post("/authorization/roles/{slug}/permissions")
def add_environment_role_permission(
    slug: str, body: schemas.PermissionRef, session: SessionDep
) -> JSONResponse:
    role = services.get_environment_role(session, slug)
    return respond(ser.role(services.add_role_permission(session, role, body.slug)))


@router.put("/authorization/roles/{slug}/permissions")
def set_environment_role_permissions(
    slug: str, body: schemas.PermissionSet, session: SessionDep
) -> JSONResponse:
    role = services.get_environment_role(session, slug)
    return respond(ser.role(services.set_role_permissions(session, role, body.permissions)))


# --- organization roles ---------------------------------------------------------------


@router.get("/authorization/organizations/{organization_id}/roles")
def list_organization_roles(organization_id: str, session: SessionDep) -> JSONResponse:
    get_organization(session, organization_id)
    roles = services.organization_roles(session, organization_id)
    return respond({"object": "list", "data": [ser.role(r) for r in roles]})


@router.post("/authorization/organizations/{organization_id}/roles", status_code=201)
def create_organization_role(
    organization_id: str, body: schemas.OrganizationRoleCreate, session: SessionDep
) -> JSONResponse:
    get_organization(session, organization_id)
    role = services.create_organization_role(
        session, organization_id, slug=body.slug, name=body.name, description=body.description
    )
    return respond(ser.role(role), 201)


@router.get("/authorization/organizations/{organization_id}/roles/{slug}")
def get_organization_role(organization_id: str, slug: str, session: SessionDep) -> JSONResponse:
    get_organization(session, organization_id)
    return respond(ser.role(services.get_organization_role(session, organization_id, slug)))


@router.patch("/authorization/organizations/{organization_id}/roles/{slug}")
def update_organization_role(
    organization_id: str, slug: str, body: schemas.NamedUpdate, session: SessionDep
) -> JSONResponse:
    _immutable_slug(body, slug)
    role = services.get_custom_role(session, organization_id, slug)
    role = services.update_role(
        session,
        role,
        name=body.name,
        description=body.description,
        set_description="description" in body.model_fields_set,
    )
    return respond(ser.role(role))


@router.delete("/authorization/organizations/{organization_id}/roles/{slug}", status_code=202)
def delete_organization_role(
    organization_id: str, slug: str, request: Request, session: SessionDep, dry_run: bool = False
) -> JSONResponse:
    role = services.get_custom_role(session, organization_id, slug)
    actor = _actor(request)
    if dry_run:
        return respond(
            preview(session, lambda: [configuration.delete_role(session, role, actor=actor)])
        )
    job = configuration.delete_role(session, role, actor=actor)
    return respond(serialize_job(job), 202)


@router.post("/authorization/organizations/{organization_id}/roles/{slug}/permissions")
def add_organization_role_permission(
    organization_id: str, slug: str, body: schemas.PermissionRef, session: SessionDep
) -> JSONResponse:
    role = services.get_custom_role(session, organization_id, slug)
    return respond(ser.role(services.add_role_permission(session, role, body.slug)))


@router.put("/authorization/organizations/{organization_id}/roles/{slug}/permissions")
def set_organization_role_permissions(
    organization_id: str, slug: str, body: schemas.PermissionSet, session: SessionDep
) -> JSONResponse:
    role = services.get_custom_role(session, organization_id, slug)
    return respond(ser.role(services.set_role_permissions(session, role, body.permissions)))


@router.delete(
    "/authorization/organizations/{organization_id}/roles/{slug}/permissions/{permission_slug}",
    status_code=204,
)
def remove_organization_role_permission(
    organization_id: str, slug: str, permission_slug: str, session: SessionDep
) -> Response:
    role = services.get_custom_role(session, organization_id, slug)
    services.remove_role_permission(session, role, permission_slug)
    return Response(status_code=204)


# --- settings (ours) ------------------------------------------------------------------


@router.get("/authorization/settings")
def get_settings(session: SessionDep) -> JSONResponse:
    return respond(configuration.environment_settings_body(session))


@router.put("/authorization/settings")
def put_settings(
    body: schemas.SettingsUpdate, request: Request, session: SessionDep, dry_run: bool = False
) -> JSONResponse:
    """Default role, multiple roles, priority order; each change that moves memberships
    starts a job. ``dry_run=true``: the impact only (issue 6 point 6)."""
    changes = body.model_dump(exclude_unset=True)
    actor = _actor(request)

    def change() -> tuple[dict[str, object], list[Job]]:
        return configuration.update_environment_settings(session, changes, actor=actor)

    if dry_run:
        return respond(preview(session, lambda: change()[1]))
    result, jobs = change()
    return respond(configuration.with_jobs(result, jobs), 202 if jobs else 200)


@router.get("/organizations/{organization_id}/authorization_settings")
def get_org_settings(organization_id: str, session: SessionDep) -> JSONResponse:
    return respond(configuration.organization_settings_body(session, organization_id))


@router.put("/organizations/{organization_id}/authorization_settings")
def put_org_settings(
    organization_id: str,
    body: schemas.OrganizationSettingsUpdate,
    request: Request,
    session: SessionDep,
    dry_run: bool = False,
) -> JSONResponse:
    changes = body.model_dump(exclude_unset=True)
    actor = _actor(request)

    def change() -> tuple[dict[str, object], list[Job]]:
        return configuration.update_organization_settings(
            session, organization_id, changes, actor=actor
        )

    if dry_run:
        return respond(preview(session, lambda: change()[1]))
    result, jobs = change()
    return respond(configuration.with_jobs(result, jobs), 202 if jobs else 200)
