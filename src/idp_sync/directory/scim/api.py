"""HTTP: the SCIM 2.0 server of each directory at ``/scim/v2/{directory_id}/`` (RFC 7644).

Handlers parse, call a mirror service, render; ``ScimRoute`` owns authentication, the
transaction and error bodies. Request bodies arrive already normalised by the directory's
IdP adapter (``request.state.scim_body``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from idp_sync.api.routing import event_loop_first
from idp_sync.directory import members, mirror
from idp_sync.directory.models import Directory, DirectoryGroup, DirectoryUser
from idp_sync.directory.scim import filters, members_async, schemas, users_async
from idp_sync.directory.scim.errors import InvalidFilter, InvalidSyntax, ScimError, ScimNotFound
from idp_sync.directory.scim.listing import Listing
from idp_sync.directory.scim.patch import parse_ops
from idp_sync.directory.scim.routing import (
    KNOWN_DIRECTORIES,
    KnownDirectory,
    ScimRoute,
    normalised_body,
    scim_response,
)
from idp_sync.metrics import SCIM_REQUESTS
from idp_sync.runtime import PostgresReader, Runtime

router = APIRouter(prefix="/scim/v2/{directory_id}", route_class=ScimRoute, tags=["scim"])


def _session(request: Request) -> Session:
    session: Session = request.state.session
    return session


def _directory(request: Request) -> Directory:
    directory: Directory = request.state.directory
    return directory


SessionDep = Annotated[Session, Depends(_session)]
DirectoryDep = Annotated[Directory, Depends(_directory)]
ListingDep = Annotated[Listing, Depends(Listing)]


def _base(request: Request, directory: Directory | str) -> str:
    directory_id = directory if isinstance(directory, str) else directory.id
    return f"{str(request.base_url).rstrip('/')}/scim/v2/{directory_id}"


@dataclass(frozen=True)
class _Caller:
    """What an event-loop path knows before its statement: the directory (as the unit of
    work last authenticated it) and the bearer token, which the statement checks."""

    directory_id: str
    known: KnownDirectory
    token: str


def _caller(request: Request) -> _Caller | None:
    """None (the unit of work answers, its 401 included) unless the directory is known
    and a bearer token was sent."""
    directory_id = request.path_params["directory_id"]
    known = KNOWN_DIRECTORIES.get(directory_id)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if known is None or scheme.lower() != "bearer" or not token.strip():
        return None
    return _Caller(directory_id, known, token.strip())


async def _caller_with_body(request: Request) -> tuple[_Caller, dict[str, Any]] | None:
    """``_caller`` and the request's JSON object as the unit of work would see it
    (``routing.normalised_body``); None where either is."""
    caller = _caller(request)
    if caller is None:
        return None
    body = normalised_body(await request.body(), caller.known.type)
    return None if body is None else (caller, body)


def _body(request: Request) -> dict[str, Any]:
    body: dict[str, Any] | None = request.state.scim_body
    if body is None:
        raise InvalidSyntax("a JSON body is required")
    return body


# --- discovery (RFC 7644 §4) ------------------------------------------------------------


@router.get("/ServiceProviderConfig")
def service_provider_config(request: Request, directory: DirectoryDep) -> JSONResponse:
    return scim_response(schemas.service_provider_config(_base(request, directory)))


@router.get("/ResourceTypes")
def resource_types(request: Request, directory: DirectoryDep) -> JSONResponse:
    items = schemas.resource_types(_base(request, directory))
    return scim_response(schemas.list_response(items, len(items), 1))


@router.get("/ResourceTypes/{name}")
def resource_type(name: str, request: Request, directory: DirectoryDep) -> JSONResponse:
    found = [t for t in schemas.resource_types(_base(request, directory)) if t["id"] == name]
    if not found:
        raise ScimNotFound(f"resource type {name} not found")
    return scim_response(found[0])


@router.get("/Schemas")
def schema_list(request: Request, directory: DirectoryDep) -> JSONResponse:
    items = schemas.schemas(_base(request, directory))
    return scim_response(schemas.list_response(items, len(items), 1))


@router.get("/Schemas/{urn}")
def schema(urn: str, request: Request, directory: DirectoryDep) -> JSONResponse:
    found = [s for s in schemas.schemas(_base(request, directory)) if s["id"] == urn]
    if not found:
        raise ScimNotFound(f"schema {urn} not found")
    return scim_response(found[0])


# --- Users ------------------------------------------------------------------------------


def _user(
    request: Request, directory: Directory, user: DirectoryUser, listing: Listing | None = None
) -> dict[str, Any]:
    resource = schemas.user_resource(user, _base(request, directory))
    if listing is not None:
        resource = schemas.project(resource, listing.attributes, listing.excluded)
    return resource


async def _create_user_on_event_loop(
    request: Request, runtime: Runtime, reader: PostgresReader
) -> Response | None:
    """A new User (``users_async``); None for the unit of work to answer anything else,
    errors included (a body it refuses, a taken userName)."""
    found = await _caller_with_body(request)
    if found is None:
        return None
    caller, body = found
    known = caller.known
    user = users_async.create_values(caller.directory_id, known.organization_id, body)
    if user is None:
        return None
    resource = await users_async.create_user(
        runtime,
        reader,
        token=caller.token,
        user=user,
        base_url=_base(request, caller.directory_id),
    )
    if resource is None:
        return None
    SCIM_REQUESTS.labels(known.type, "POST", "201").inc()
    return scim_response(resource, 201, resource["meta"]["location"])


@router.post("/Users", status_code=201)
@event_loop_first(_create_user_on_event_loop)
def create_user(request: Request, session: SessionDep, directory: DirectoryDep) -> JSONResponse:
    user = mirror.create_user(session, directory, _body(request))
    resource = _user(request, directory, user)
    return scim_response(resource, 201, resource["meta"]["location"])


async def _find_user_on_event_loop(
    request: Request, runtime: Runtime, reader: PostgresReader
) -> Response | None:
    """``userName eq "..."``, the IdPs' check before a create (``users_async``); None for
    the unit of work to answer any other query, errors included."""
    key = users_async.user_name_query(dict(request.query_params))
    caller = _caller(request)
    if key is None or caller is None:
        return None
    found = await users_async.find_by_user_name(
        reader,
        directory_id=caller.directory_id,
        token=caller.token,
        key=key,
        base_url=_base(request, caller.directory_id),
    )
    if found is None:
        return None
    SCIM_REQUESTS.labels(caller.known.type, "GET", "200").inc()
    return scim_response(found)


@router.get("/Users")
@event_loop_first(_find_user_on_event_loop)
def list_users(
    request: Request, session: SessionDep, directory: DirectoryDep, listing: ListingDep
) -> JSONResponse:
    return _list(request, session, directory, listing, [_users])


@router.post("/Users/.search")
def search_users(request: Request, session: SessionDep, directory: DirectoryDep) -> JSONResponse:
    """RFC 7644 §3.4.3: the GET ``/Users`` query, its parameters in the body."""
    listing = Listing.from_search(request.state.scim_body)
    return _list(request, session, directory, listing, [_users])


@router.get("/Users/{user_id}")
def get_user(
    user_id: str,
    request: Request,
    session: SessionDep,
    directory: DirectoryDep,
    listing: ListingDep,
) -> JSONResponse:
    user = mirror.get_user(session, directory, user_id)
    return scim_response(_user(request, directory, user, listing))


@router.put("/Users/{user_id}")
def replace_user(
    user_id: str, request: Request, session: SessionDep, directory: DirectoryDep
) -> JSONResponse:
    user = mirror.get_user(session, directory, user_id)
    user = mirror.replace_user(session, directory, user, _body(request))
    return scim_response(_user(request, directory, user))


@router.patch("/Users/{user_id}")
def patch_user(
    user_id: str,
    request: Request,
    session: SessionDep,
    directory: DirectoryDep,
    listing: ListingDep,
) -> JSONResponse:
    user = mirror.get_user(session, directory, user_id)
    user = mirror.patch_user(session, directory, user, parse_ops(_body(request)))
    return scim_response(_user(request, directory, user, listing))


@router.delete("/Users/{user_id}", status_code=204)
def delete_user(user_id: str, session: SessionDep, directory: DirectoryDep) -> Response:
    mirror.delete_user(session, directory, mirror.get_user(session, directory, user_id))
    return Response(status_code=204)


# --- Groups -----------------------------------------------------------------------------


def _group(
    request: Request,
    session: Session,
    directory: Directory,
    group: DirectoryGroup,
    listing: Listing | None = None,
) -> dict[str, Any]:
    with_members = listing is None or listing.wants_members()
    member_list = None
    if with_members:
        member_list = [
            {
                "value": user_id,
                "display": display,
                "$ref": f"{_base(request, directory)}/Users/{user_id}",
            }
            for user_id, display in members.member_rows(session, group.id)
        ]
    resource = schemas.group_resource(group, _base(request, directory), member_list)
    if listing is not None:
        resource = schemas.project(resource, listing.attributes, listing.excluded)
    return resource


@router.post("/Groups", status_code=201)
def create_group(request: Request, session: SessionDep, directory: DirectoryDep) -> JSONResponse:
    group = mirror.create_group(session, directory, _body(request))
    resource = _group(request, session, directory, group)
    return scim_response(resource, 201, resource["meta"]["location"])


@router.get("/Groups")
def list_groups(
    request: Request, session: SessionDep, directory: DirectoryDep, listing: ListingDep
) -> JSONResponse:
    return _list(request, session, directory, listing, [_groups])


@router.post("/Groups/.search")
def search_groups(request: Request, session: SessionDep, directory: DirectoryDep) -> JSONResponse:
    """RFC 7644 §3.4.3: the GET ``/Groups`` query, its parameters in the body."""
    listing = Listing.from_search(request.state.scim_body)
    return _list(request, session, directory, listing, [_groups])


@router.get("/Groups/{group_id}")
def get_group(
    group_id: str,
    request: Request,
    session: SessionDep,
    directory: DirectoryDep,
    listing: ListingDep,
) -> JSONResponse:
    group = mirror.get_group(session, directory, group_id)
    return scim_response(_group(request, session, directory, group, listing))


@router.put("/Groups/{group_id}")
def replace_group(
    group_id: str, request: Request, session: SessionDep, directory: DirectoryDep
) -> JSONResponse:
    group = mirror.get_group(session, directory, group_id, lock=True)
    group = mirror.replace_group(session, directory, group, _body(request))
    return scim_response(_group(request, session, directory, group))


async def _patch_members_on_event_loop(
    request: Request, runtime: Runtime, reader: PostgresReader
) -> Response | None:
    """A PATCH that only adds or removes members (``members_async``), answered 204; None
    for the unit of work to answer anything else, errors included."""
    params = request.query_params
    if "attributes" in params or "excludedAttributes" in params:
        return None
    found = await _caller_with_body(request)
    if found is None:
        return None
    caller, body = found
    delta = members_async.member_delta(body)
    if delta is None:
        return None
    done = await members_async.patch_members(
        runtime,
        reader,
        directory_id=caller.directory_id,
        group_id=request.path_params["group_id"],
        token=caller.token,
        add=delta[0],
        remove=delta[1],
    )
    if not done:
        return None
    SCIM_REQUESTS.labels(caller.known.type, "PATCH", "204").inc()
    return Response(status_code=204)


@router.patch("/Groups/{group_id}", response_model=None)
@event_loop_first(_patch_members_on_event_loop)
def patch_group(
    group_id: str,
    request: Request,
    session: SessionDep,
    directory: DirectoryDep,
    listing: ListingDep,
) -> Response:
    """RFC 7644 §3.5.2: 204 unless attributes are asked for; members are never serialised
    unless asked, so a 5,000-member PATCH answers in constant size."""
    body = _body(request)
    shared = _members_only(body)
    group = mirror.get_group(session, directory, group_id, lock=True, shared=shared)
    group = mirror.patch_group(session, directory, group, parse_ops(body))
    if not (listing.attributes or listing.excluded):
        return Response(status_code=204)
    return scim_response(_group(request, session, directory, group, listing))


def _members_only(body: dict[str, Any]) -> bool:
    """Whether the PATCH may share-lock the group (``mirror.members_only``). An invalid
    body takes the exclusive lock and fails in ``parse_ops`` after the group was found,
    so an unknown group is still 404 whatever the body."""
    try:
        return mirror.members_only(parse_ops(body))
    except ScimError:
        return False


@router.delete("/Groups/{group_id}", status_code=204)
def delete_group(group_id: str, session: SessionDep, directory: DirectoryDep) -> Response:
    mirror.delete_group(
        session, directory, mirror.get_group(session, directory, group_id, lock=True)
    )
    return Response(status_code=204)


# --- lists and searches (RFC 7644 §3.4.2, §3.4.3) --------------------------------------


@router.post("/.search")
def search_all(request: Request, session: SessionDep, directory: DirectoryDep) -> JSONResponse:
    """RFC 7644 §3.4.3 at the server root: Users then Groups, paged as one list.

    A filter naming an attribute that only one resource type has selects from that type
    only; a filter that neither type can evaluate is 400 ``invalidFilter``.
    """
    listing = Listing.from_search(request.state.scim_body)
    return _list(request, session, directory, listing, [_users, _groups])


@dataclass(frozen=True)
class _Kind:
    """One resource type's query (filtered) and how to render its rows."""

    query: Select[Any]
    id_column: Any
    render: Callable[[Any], dict[str, Any]]


KindFactory = Callable[[Request, Session, Directory, Listing], _Kind]


def _users(request: Request, session: Session, directory: Directory, listing: Listing) -> _Kind:
    query = select(DirectoryUser).where(
        DirectoryUser.directory_id == directory.id, DirectoryUser.deleted_at.is_(None)
    )
    if listing.filter:
        query = query.where(filters.parse_filter(listing.filter, filters.USER_ATTRS))
    return _Kind(query, DirectoryUser.id, lambda u: _user(request, directory, u, listing))


def _groups(request: Request, session: Session, directory: Directory, listing: Listing) -> _Kind:
    query = select(DirectoryGroup).where(
        DirectoryGroup.directory_id == directory.id, DirectoryGroup.deleted_at.is_(None)
    )
    if listing.filter:
        query = query.where(filters.parse_filter(listing.filter, filters.GROUP_ATTRS))
    return _Kind(
        query, DirectoryGroup.id, lambda g: _group(request, session, directory, g, listing)
    )


def _list(
    request: Request,
    session: Session,
    directory: Directory,
    listing: Listing,
    factories: list[KindFactory],
) -> JSONResponse:
    """A ListResponse over one or more resource types, concatenated in that order."""
    kinds, errors = [], []
    for factory in factories:
        try:
            kinds.append(factory(request, session, directory, listing))
        except InvalidFilter as exc:
            errors.append(exc)
    if not kinds:
        raise errors[0]
    skip, room, total, resources = listing.start - 1, listing.count, 0, []
    for kind in kinds:
        rows, found = _page(session, kind.query, kind.id_column, skip, room)
        resources += [kind.render(row) for row in rows]
        total += found
        skip, room = max(skip - found, 0), room - len(rows)
    return scim_response(schemas.list_response(resources, total, listing.start))


def _page(
    session: Session, query: Select[Any], id_column: Any, offset: int, limit: int
) -> tuple[list[Any], int]:
    """One page in a stable order (by id) and the total count (RFC 7644 §3.4.2.4)."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if limit <= 0 or offset >= total:
        return [], total
    rows = session.scalars(query.order_by(id_column).offset(offset).limit(limit))
    return list(rows), total


@router.api_route(
    "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
def unknown_endpoint(rest: str, request: Request) -> Response:
    """A known endpoint with another method is 405; anything else (``/Bulk`` included,
    not supported) is a SCIM 404 (RFC 7644 §3.12)."""
    if rest.split("/", 1)[0] in ENDPOINTS:
        raise ScimError(f"{request.method} is not allowed on '/{rest}'", status=405)
    raise ScimNotFound(f"no SCIM endpoint '/{rest}'")


ENDPOINTS = frozenset(
    {"ServiceProviderConfig", "ResourceTypes", "Schemas", "Users", "Groups", ".search"}
)
