"""HTTP: SSO connections and their IdP signing certificates in WorkOS's shape (``workos``
SDK ``sso``), and our connection group-to-role mappings (DESIGN §5)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.jobs.models import Job
from idp_sync.jobs.preview import dry_run as preview
from idp_sync.jobs.services import serialize as serialize_job
from idp_sync.sso import serializers as ser
from idp_sync.sso import services
from idp_sync.sso import signin as _signin  # noqa: F401  (registers the SSO resolver source)
from idp_sync.sso.models import Connection
from idp_sync.wire import PageParams, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["sso"])
SessionDep = Annotated[Session, Depends(session_of)]
PageDep = Annotated[PageParams, Depends(PageParams)]


class SamlOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    idp_metadata_url: str | None = None
    acs_url: str | None = Field(default=None, max_length=2048)
    sp_entity_id: str | None = Field(default=None, max_length=1024)
    idp_entity_id: str | None = Field(default=None, max_length=1024)
    idp_sso_url: str | None = Field(default=None, max_length=2048)
    idp_signing_certs: list[str] | None = Field(default=None, max_length=10)
    allow_idp_initiated: bool | None = None  # ours
    allow_sha1: bool | None = None  # ours


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    organization_id: str = Field(min_length=1)
    name: str | None = Field(default=None, max_length=255)
    external_id: str | None = Field(default=None, max_length=255)
    connection_type: str | None = None
    attribute_maps: dict[str, Any] | None = None
    saml_options: SamlOptions | None = None
    oidc_options: dict[str, Any] | None = None


class ConnectionPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=255)
    external_id: str | None = Field(default=None, max_length=255)
    connection_type: str | None = None
    attribute_maps: dict[str, Any] | None = None
    saml_options: SamlOptions | None = None


class CertCreate(BaseModel):
    value: str = Field(min_length=1, max_length=20000)


class RedirectUriCreate(BaseModel):
    uri: str = Field(min_length=1, max_length=2048)


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


# --- connections ----------------------------------------------------------------------


@router.post("/connections", status_code=201)
def create_connection(
    body: ConnectionCreate, request: Request, session: SessionDep
) -> JSONResponse:
    public_url = request.app.state.runtime.settings.public_url
    data = body.model_dump(exclude_unset=True)
    connection = services.create_connection(session, data, public_url=public_url)
    return respond(ser.connection(connection), 201)


@router.get("/connections")
def list_connections(
    session: SessionDep,
    page: PageDep,
    organization_id: str | None = None,
    connection_type: str | None = None,
    search: str | None = None,
) -> JSONResponse:
    query = services.list_query(
        organization_id=organization_id, connection_type=connection_type, search=search
    )
    rows, meta = paginate(session, query, Connection.id, page)
    return respond(list_body([ser.connection(c) for c in rows], meta))


@router.get("/connections/{connection_id}")
def get_connection(connection_id: str, session: SessionDep) -> JSONResponse:
    return respond(ser.connection(services.get_connection(session, connection_id)))


@router.patch("/connections/{connection_id}")
def update_connection(
    connection_id: str, body: ConnectionPatch, session: SessionDep
) -> JSONResponse:
    connection = services.get_connection(session, connection_id)
    data = body.model_dump(exclude_unset=True)
    return respond(ser.connection(services.update_connection(session, connection, data)))


@router.delete("/connections/{connection_id}", status_code=204)
def delete_connection(connection_id: str, request: Request, session: SessionDep) -> Response:
    connection = services.get_connection(session, connection_id)
    services.delete_connection(session, connection, actor=_actor(request))
    return Response(status_code=204)


@router.post("/connections/{connection_id}/deactivate")
def deactivate_connection(connection_id: str, session: SessionDep) -> JSONResponse:
    """Ours: sign-ins through the connection are refused until it is activated again."""
    connection = services.get_connection(session, connection_id)
    return respond(ser.connection(services.set_enabled(session, connection, False)))


@router.post("/connections/{connection_id}/activate")
def activate_connection(connection_id: str, session: SessionDep) -> JSONResponse:
    connection = services.get_connection(session, connection_id)
    return respond(ser.connection(services.set_enabled(session, connection, True)))


# --- IdP signing certificates ---------------------------------------------------------

CERTS = "/connections/{connection_id}/saml_idp_signing_certs"


@router.get(CERTS)
def list_certs(connection_id: str, session: SessionDep) -> JSONResponse:
    services.get_connection(session, connection_id)
    data = [ser.cert(c) for c in services.certs_of(session, connection_id)]
    return respond({"object": "list", "data": data})


@router.post(CERTS, status_code=201)
def add_cert(connection_id: str, body: CertCreate, session: SessionDep) -> JSONResponse:
    connection = services.get_connection(session, connection_id)
    return respond(ser.cert(services.add_cert(session, connection, body.value)), 201)


@router.delete(CERTS + "/{cert_id}", status_code=204)
def remove_cert(connection_id: str, cert_id: str, session: SessionDep) -> Response:
    connection = services.get_connection(session, connection_id)
    services.remove_cert(session, connection, cert_id)
    return Response(status_code=204)


# --- group-to-role mappings -----------------------------------------------------------

MAPPINGS = "/connections/{connection_id}/group_role_mappings"


@router.get(MAPPINGS)
def list_mappings(connection_id: str, session: SessionDep) -> JSONResponse:
    services.get_connection(session, connection_id)
    data = [ser.mapping(m) for m in services.mappings_of(session, connection_id)]
    return respond(list_body(data, {"before": None, "after": None}))


@router.post(MAPPINGS, status_code=201)
def create_mapping(
    connection_id: str,
    body: MappingCreate,
    request: Request,
    session: SessionDep,
    dry_run: bool = False,
) -> JSONResponse:
    """A mapping, and the job (``bulk`` queue) that recomputes the connection's members;
    with ``dry_run=true``, the impact only (issue 6 point 6)."""
    connection = services.get_connection(session, connection_id)

    def change() -> tuple[Any, Job]:
        return services.create_mapping(
            session, connection, group=body.group, role_slug=body.role_slug, actor=_actor(request)
        )

    if dry_run:
        return respond(preview(session, lambda: [change()[1]]))
    mapping, job = change()
    return respond({**ser.mapping(mapping), "job": serialize_job(job)}, 201)


@router.put(MAPPINGS + "/{mapping_id}")
def update_mapping(
    connection_id: str,
    mapping_id: str,
    body: MappingUpdate,
    request: Request,
    session: SessionDep,
    dry_run: bool = False,
) -> JSONResponse:
    connection = services.get_connection(session, connection_id)

    def change() -> tuple[Any, Job]:
        return services.update_mapping(
            session,
            connection,
            mapping_id,
            group=body.group,
            role_slug=body.role_slug,
            actor=_actor(request),
        )

    if dry_run:
        return respond(preview(session, lambda: [change()[1]]))
    mapping, job = change()
    return respond({**ser.mapping(mapping), "job": serialize_job(job)})


@router.delete(MAPPINGS + "/{mapping_id}", status_code=202)
def delete_mapping(
    connection_id: str,
    mapping_id: str,
    request: Request,
    session: SessionDep,
    dry_run: bool = False,
) -> JSONResponse:
    connection = services.get_connection(session, connection_id)

    def change() -> Job:
        return services.delete_mapping(session, connection, mapping_id, actor=_actor(request))

    if dry_run:
        return respond(preview(session, lambda: [change()]))
    return respond({"job": serialize_job(change())}, 202)


# --- redirect URIs (ours; WorkOS configures them in its dashboard) ---------------------


@router.get("/sso/redirect_uris")
def list_redirect_uris(session: SessionDep) -> JSONResponse:
    data = [ser.redirect_uri(r) for r in services.redirect_uris(session)]
    return respond(list_body(data, {"before": None, "after": None}))


@router.post("/sso/redirect_uris", status_code=201)
def add_redirect_uri(body: RedirectUriCreate, session: SessionDep) -> JSONResponse:
    return respond(ser.redirect_uri(services.add_redirect_uri(session, body.uri)), 201)


@router.delete("/sso/redirect_uris/{redirect_uri_id}", status_code=204)
def remove_redirect_uri(redirect_uri_id: str, session: SessionDep) -> Response:
    services.remove_redirect_uri(session, redirect_uri_id)
    return Response(status_code=204)
