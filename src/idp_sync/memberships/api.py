"""HTTP: organization memberships, as the ``workos`` SDK's ``organization_membership`` calls
them, plus our ``role_explanation`` (DESIGN §5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp_sync.api.routing import (
    UnitOfWorkRoute,
    event_loop_first,
    idempotency_guard,
    read_only,
    reader_of,
    respond,
    session_of,
)
from idp_sync.errors import IdpSyncError, NotFound, Unprocessable
from idp_sync.memberships import create_async, services
from idp_sync.memberships import serializers as ser
from idp_sync.memberships.models import OrganizationMembership
from idp_sync.memberships.queries import read_membership_view
from idp_sync.organizations.models import Organization
from idp_sync.runtime import PostgresReader, Reader, Runtime
from idp_sync.wire import PageParams, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["organization memberships"])
SessionDep = Annotated[Session, Depends(session_of)]
ReaderDep = Annotated[Reader, Depends(reader_of)]
PageDep = Annotated[PageParams, Depends(PageParams)]
BASE = "/user_management/organization_memberships"


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role_slug: str | None = Field(default=None, min_length=1)
    role_slugs: list[str] | None = None

    def slugs(self) -> list[str] | None:
        if self.role_slug is not None and self.role_slugs is not None:
            raise Unprocessable("give role_slug or role_slugs, not both")
        if self.role_slug is not None:
            return [self.role_slug]
        return self.role_slugs


class MembershipCreate(RoleBody):
    user_id: str = Field(min_length=1)
    organization_id: str = Field(min_length=1)


def _render(session: Session, membership: OrganizationMembership) -> JSONResponse:
    name = session.scalar(
        select(Organization.name).where(Organization.id == membership.organization_id)
    )
    return respond(ser.membership(membership, name))


async def _create_on_event_loop(
    request: Request, runtime: Runtime, reader: PostgresReader
) -> Response | None:
    """The common create (``create_async``); None for the unit of work to answer, which
    also gives every error, so a body it would refuse goes there unread."""
    try:
        body = MembershipCreate.model_validate_json(await request.body())
        slugs = body.slugs()
    except (ValidationError, IdpSyncError):
        return None
    created = await create_async.create(
        runtime,
        reader,
        organization_id=body.organization_id,
        user_id=body.user_id,
        role_slugs=slugs,
        guard=await idempotency_guard(request),
    )
    return None if created is None else respond(created, status_code=201)


@router.post(BASE, status_code=201)
@event_loop_first(_create_on_event_loop)
def create_membership(body: MembershipCreate, session: SessionDep) -> JSONResponse:
    membership, organization_name = services.add_membership(
        session, organization_id=body.organization_id, user_id=body.user_id, role_slugs=body.slugs()
    )
    return respond(ser.membership(membership, organization_name), status_code=201)


@router.get(BASE)
def list_memberships(
    session: SessionDep,
    page: PageDep,
    organization_id: str | None = None,
    user_id: str | None = None,
    statuses: str | None = None,
) -> JSONResponse:
    wanted = [s for s in (statuses or "").split(",") if s]
    query = services.list_query(organization_id=organization_id, user_id=user_id, statuses=wanted)
    rows, meta = paginate(session, query, OrganizationMembership.id, page)
    org_ids = {m.organization_id for m in rows}
    rows_names = session.execute(
        select(Organization.id, Organization.name).where(Organization.id.in_(org_ids))
    ).all()
    names = {org_id: name for org_id, name in rows_names}
    return respond(list_body([ser.membership(m, names.get(m.organization_id)) for m in rows], meta))


@router.get(BASE + "/{membership_id}")
@read_only
async def get_membership(membership_id: str, reader: ReaderDep) -> JSONResponse:
    # The hot read path: one statement on the async pool, no session, no threadpool.
    view = await read_membership_view(reader, membership_id)
    if view is None:
        raise NotFound(f"organization membership {membership_id} not found")
    return respond(view)


@router.put(BASE + "/{membership_id}")
def update_membership(membership_id: str, body: RoleBody, session: SessionDep) -> JSONResponse:
    slugs = body.slugs()
    if slugs is None:
        membership = services.get_membership(session, membership_id)
    else:
        membership = services.update_roles(session, membership_id, slugs)
    return _render(session, membership)


@router.delete(BASE + "/{membership_id}", status_code=204)
def delete_membership(membership_id: str, session: SessionDep) -> Response:
    services.delete_membership(session, services.lock_membership(session, membership_id))
    return Response(status_code=204)


@router.put(BASE + "/{membership_id}/deactivate")
def deactivate(membership_id: str, session: SessionDep) -> JSONResponse:
    return _render(session, services.set_status(session, membership_id, "inactive"))


@router.put(BASE + "/{membership_id}/reactivate")
def reactivate(membership_id: str, session: SessionDep) -> JSONResponse:
    return _render(session, services.set_status(session, membership_id, "active"))


@router.get(BASE + "/{membership_id}/role_explanation")
def role_explanation(membership_id: str, session: SessionDep) -> JSONResponse:
    # Imported here: memberships does not depend on the SSO package at import time.
    from idp_sync.sso.signin import explain_sso_source

    body = ser.explanation(services.get_membership(session, membership_id))
    if body["source"] == "sso":  # whose groups, and whether they are the last known (overage)
        body["sso"] = explain_sso_source(session, membership_id)
    return respond(body)
