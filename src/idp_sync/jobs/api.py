"""HTTP: jobs and their progress (ours, in WorkOS style)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.jobs import services
from idp_sync.jobs.models import Job
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


@router.get("/jobs/{job_id}")
def get_job(job_id: str, session: SessionDep) -> JSONResponse:
    return respond(services.serialize(services.get_job(session, job_id)))
