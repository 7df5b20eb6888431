"""HTTP: organizations, as the ``workos`` SDK's ``organizations`` module calls them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.errors import Unprocessable
from idp_sync.organizations import serializers as ser
from idp_sync.organizations import services
from idp_sync.organizations.models import Organization
from idp_sync.wire import PageParams, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["organizations"])
SessionDep = Annotated[Session, Depends(session_of)]
PageDep = Annotated[PageParams, Depends(PageParams)]


class DomainData(BaseModel):
    domain: str
    state: str = "pending"


class OrganizationBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=255)
    domains: list[str] | None = None
    domain_data: list[DomainData] | None = None
    external_id: str | None = Field(default=None, max_length=255)
    metadata: dict[str, str] | None = None
    allow_profiles_outside_organization: bool | None = None
    stripe_customer_id: str | None = Field(default=None, max_length=255)

    def domain_inputs(self) -> list[services.DomainInput] | None:
        if self.domain_data is not None:
            return [services.DomainInput(d.domain, d.state) for d in self.domain_data]
        if self.domains is not None:
            return [services.DomainInput(d) for d in self.domains]
        return None


@router.post("/organizations", status_code=201)
def create_organization(body: OrganizationBody, session: SessionDep) -> JSONResponse:
    if body.name is None:
        raise Unprocessable("name is required", errors=[{"code": "required", "field": "name"}])
    org = services.create_organization(
        session,
        name=body.name,
        domains=body.domain_inputs() or [],
        external_id=body.external_id,
        metadata=body.metadata,
        allow_profiles_outside_organization=body.allow_profiles_outside_organization,
    )
    return respond(ser.organization(org), 201)


@router.get("/organizations")
def list_organizations(
    session: SessionDep, page: PageDep, domains: str | None = None, search: str | None = None
) -> JSONResponse:
    query = services.list_query(
        domains=(domains or "").split(",") if domains else [], search=search
    )
    rows, meta = paginate(session, query, Organization.id, page)
    return respond(list_body([ser.organization(o) for o in rows], meta))


@router.get("/organizations/external_id/{external_id}")
def get_by_external_id(external_id: str, session: SessionDep) -> JSONResponse:
    return respond(ser.organization(services.get_by_external_id(session, external_id)))


@router.get("/organizations/{organization_id}")
def get_organization(organization_id: str, session: SessionDep) -> JSONResponse:
    return respond(ser.organization(services.get_organization(session, organization_id)))


@router.put("/organizations/{organization_id}")
def update_organization(
    organization_id: str, body: OrganizationBody, session: SessionDep
) -> JSONResponse:
    org = services.get_organization(session, organization_id)
    changes = body.model_dump(exclude_unset=True, exclude={"domains", "domain_data"})
    domains = body.domain_inputs()
    if domains is not None:
        changes["domains"] = domains
    return respond(ser.organization(services.update_organization(session, org, changes)))


@router.delete("/organizations/{organization_id}", status_code=204)
def delete_organization(organization_id: str, session: SessionDep) -> Response:
    services.delete_organization(session, services.get_organization(session, organization_id))
    return Response(status_code=204)
