"""HTTP: directories, their SCIM tokens and group-to-role mappings, and directory users
and groups in WorkOS's shape (``workos`` SDK ``directory_sync``; DESIGN §5)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.directory import serializers as ser
from idp_sync.directory import services, views
from idp_sync.directory import sync as _sync  # noqa: F401 (registers the resolver's directory source)
from idp_sync.directory.models import Directory, DirectoryGroup
from idp_sync.jobs.preview import dry_run as preview
from idp_sync.jobs.services import serialize as serialize_job
from idp_sync.wire import PageParams, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["directory sync"])


class SecretIssuingRoute(UnitOfWorkRoute):
    """A unit of work whose answer is never kept for ``Idempotency-Key`` replay: it holds a
    bearer token, which must exist only as a hash at rest (DESIGN §7). A retried request
    acts again (a new directory, or a new token), and is never answered from storage."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            headers = [
                (k, v) for k, v in request.scope["headers"] if k.lower() != b"idempotency-key"
            ]
            return await handler(Request({**request.scope, "headers": headers}, request.receive))

        return route


token_router = APIRouter(route_class=SecretIssuingRoute, tags=["directory sync"])

SessionDep = Annotated[Session, Depends(session_of)]
PageDep = Annotated[PageParams, Depends(PageParams)]


class DirectoryCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    organization_id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=255)
    type: str = "generic scim v2.0"


class MappingCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    group: str = Field(min_length=1, max_length=255)
    role_slug: str = Field(min_length=1, max_length=100)


class MappingUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    group: str | None = Field(default=None, min_length=1, max_length=255)
    role_slug: str | None = Field(default=None, min_length=1, max_length=100)


def _actor(request: Request) -> str:
    return f"api_key:{request.state.api_key_id}"


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _directory(session: Session, d: Directory) -> dict[str, Any]:
    active, inactive = services.user_counts(session, d.id)
    groups = session.scalar(
        select(func.count())
        .select_from(DirectoryGroup)
        .where(DirectoryGroup.directory_id == d.id, DirectoryGroup.deleted_at.is_(None))
    )
    return ser.directory(d, active=active, inactive=inactive, groups=groups or 0)


def _with_token(request: Request, session: Session, d: Directory, token: str) -> dict[str, Any]:
    return {**_directory(session, d), "scim": ser.scim_credentials(_base_url(request), d.id, token)}


# --- directories ----------------------------------------------------------------------


@token_router.post("/directories", status_code=201)
def create_directory(body: DirectoryCreate, request: Request, session: SessionDep) -> JSONResponse:
    """Ours (WorkOS has no API for it): the SCIM base URL and bearer token, shown once."""
    directory, token = services.create_directory(
        session, organization_id=body.organization_id, name=body.name, directory_type=body.type
    )
    return respond(_with_token(request, session, directory, token), 201)


@token_router.post("/directories/{directory_id}/scim_token", status_code=201)
def rotate_token(directory_id: str, request: Request, session: SessionDep) -> JSONResponse:
    directory, token = services.rotate_token(session, directory_id)
    return respond(_with_token(request, session, directory, token), 201)


@router.get("/directories")
def list_directories(
    session: SessionDep,
    page: PageDep,
    organization_id: str | None = None,
    search: str | None = None,
) -> JSONResponse:
    query = services.list_query(organization_id=organization_id, search=search)
    rows, meta = paginate(session, query, Directory.id, page)
    return respond(list_body([_directory(session, d) for d in rows], meta))


@router.get("/directories/{directory_id}")
def get_directory(directory_id: str, session: SessionDep) -> JSONResponse:
    return respond(_directory(session, services.get_directory(session, directory_id)))


@router.delete("/directories/{directory_id}", status_code=204)
def delete_directory(directory_id: str, request: Request, session: SessionDep) -> Response:
    directory = services.get_directory(session, directory_id)
    services.delete_directory(session, directory, actor=_actor(request))
    return Response(status_code=204)


# --- group-to-role mappings -----------------------------------------------------------

MAPPINGS = "/directories/{directory_id}/group_role_mappings"


@router.get(MAPPINGS)
def list_mappings(directory_id: str, session: SessionDep) -> JSONResponse:
    services.get_directory(session, directory_id)
    data = [ser.mapping(m) for m in services.mappings_of(session, directory_id)]
    return respond(list_body(data, {"before": None, "after": None}))


@router.post(MAPPINGS, status_code=201)
def create_mapping(
    directory_id: str,
    body: MappingCreate,
    request: Request,
    session: SessionDep,
    dry_run: bool = False,
) -> JSONResponse:
    """A mapping, and the job (``bulk`` queue) that recomputes the directory's members;
    with ``dry_run=true``, the impact only (DESIGN §5)."""
    directory = services.get_directory(session, directory_id)

    def change() -> tuple[Any, Any]:
        return services.create_mapping(
            session, directory, group=body.group, role_slug=body.role_slug, actor=_actor(request)
        )

    if dry_run:
        return respond(preview(session, lambda: [change()[1]]))
    mapping, job = change()
    return respond({**ser.mapping(mapping), "job": serialize_job(job)}, 201)


@router.put(MAPPINGS + "/{mapping_id}")
def update_mapping(
    directory_id: str,
    mapping_id: str,
    body: MappingUpdate,
    request: Request,
    session: SessionDep,
    dry_run: bool = False,
) -> JSONResponse:
    directory = services.get_directory(session, directory_id)
    if dry_run:
        return respond(
            preview(
                session,
                lambda: [
                    services.update_mapping(
                        session,
                        directory,
                        mapping_id,
                        group=body.group,
                        role_slug=body.role_slug,
                        actor=_actor(request),
                    )[1]
                ],
            )
        )
    mapping, job = services.update_mapping(
        session,
        directory,
        mapping_id,
        group=body.group,
        role_slug=body.role_slug,
        actor=_actor(request),
    )
    return respond({**ser.mapping(mapping), "job": serialize_job(job)})


@router.delete(MAPPINGS + "/{mapping_id}", status_code=202)
def delete_mapping(
    directory_id: str, mapping_id: str, request: Request, session: SessionDep, dry_run: bool = False
) -> JSONResponse:
    directory = services.get_directory(session, directory_id)
    actor = _actor(request)
    if dry_run:
        return respond(
            preview(
                session,
                lambda: [services.delete_mapping(session, directory, mapping_id, actor=actor)],
            )
        )
    job = services.delete_mapping(session, directory, mapping_id, actor=actor)
    return respond({"job": serialize_job(job)}, 202)


# --- directory users and groups (WorkOS shape) ----------------------------------------


@router.get("/directory_users")
def list_directory_users(
    session: SessionDep,
    page: PageDep,
    directory: str | None = None,
    group: str | None = None,
    idp_id: str | None = None,
    email: str | None = None,
) -> JSONResponse:
    query = views.users_query(directory=directory, group=group, idp_id=idp_id, email=email)
    rows, meta = paginate(session, query, views.DirectoryUser.id, page)
    return respond(list_body(views.render_users(session, list(rows)), meta))


@router.get("/directory_users/{user_id}")
def get_directory_user(user_id: str, session: SessionDep) -> JSONResponse:
    return respond(views.render_users(session, [views.get_user(session, user_id)])[0])


@router.get("/directory_groups")
def list_directory_groups(
    session: SessionDep, page: PageDep, directory: str | None = None, user: str | None = None
) -> JSONResponse:
    query = views.groups_query(directory=directory, user=user)
    rows, meta = paginate(session, query, DirectoryGroup.id, page)
    return respond(list_body([ser.directory_group(g) for g in rows], meta))


@router.get("/directory_groups/{group_id}")
def get_directory_group(group_id: str, session: SessionDep) -> JSONResponse:
    return respond(ser.directory_group(views.get_group(session, group_id)))


router.include_router(token_router)
