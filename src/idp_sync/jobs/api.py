"""HTTP: jobs and their progress (ours, in WorkOS style)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.jobs import services
from idp_sync.jobs.models import Job
from idp_sync.jobs.preview import dry_run
from idp_sync.organizations.services import get_organization
from idp_sync.wire import PageParams, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["jobs"])
SessionDep = Annotated[Session, Depends(session_of)]
PageDep = Annotated[PageParams, Depends(PageParams)]


@router.get("/jobs")
def list_jobs(
    session: SessionDep, page: PageDep, type: str | None = None, state: str | None = None
) -> JSONResponse:
    rows, meta = paginate(session, services.list_query(job_type=type, state=state), Job.id, page)
    return respond(list_body([services.serialize(j) for j in rows], meta))


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["reconcile"]
    organization_id: str | None = None
    dry_run: bool = False


@router.post("/jobs", status_code=202)
def create_job(body: JobCreate, request: Request, session: SessionDep) -> JSONResponse:
    """Start a reconciliation of an organization (or everything) from current state."""
    params: dict[str, object] = {}
    if body.organization_id:
        get_organization(session, body.organization_id)
        params["organization_id"] = body.organization_id
    actor = f"api_key:{request.state.api_key_id}"

    def change() -> list[Job]:
        return [services.start_job(session, body.type, params, created_by=actor)]

    if body.dry_run:
        return respond(dry_run(session, change))
    return respond(services.serialize(change()[0]), 202)


@router.get("/jobs/{job_id}")
def get_job(job_id: str, session: SessionDep) -> JSONResponse:
    return respond(services.serialize(services.get_job(session, job_id)))
