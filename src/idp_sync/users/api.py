"""HTTP: users, as the ``workos`` SDK's ``user_management`` module calls them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from idp_sync.api.routing import UnitOfWorkRoute, respond, session_of
from idp_sync.users import serializers as ser
from idp_sync.users import services
from idp_sync.users.models import User
from idp_sync.wire import PageParams, list_body, paginate

router = APIRouter(route_class=UnitOfWorkRoute, tags=["users"])
SessionDep = Annotated[Session, Depends(session_of)]
PageDep = Annotated[PageParams, Depends(PageParams)]


class UserBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    email: str | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    name: str | None = Field(default=None, max_length=255)
    email_verified: bool | None = None
    external_id: str | None = Field(default=None, max_length=255)
    metadata: dict[str, str] | None = None
    locale: str | None = Field(default=None, max_length=35)


class UserCreate(UserBody):
    email: str = Field(min_length=3, max_length=320)


@router.post("/user_management/users", status_code=201)
def create_user(body: UserCreate, session: SessionDep) -> JSONResponse:
    user = services.create_user(session, body.model_dump(exclude_unset=True))
    return respond(ser.user(user), 201)


@router.get("/user_management/users")
def list_users(
    session: SessionDep,
    page: PageDep,
    organization_id: str | None = None,
    organization: str | None = None,
    email: str | None = None,
) -> JSONResponse:
    query = services.list_query(organization_id=organization_id or organization, email=email)
    rows, meta = paginate(session, query, User.id, page)
    return respond(list_body([ser.user(u) for u in rows], meta))


@router.get("/user_management/users/{user_id}")
def get_user(user_id: str, session: SessionDep) -> JSONResponse:
    return respond(ser.user(services.get_user(session, user_id)))


@router.put("/user_management/users/{user_id}")
def update_user(user_id: str, body: UserBody, session: SessionDep) -> JSONResponse:
    user = services.get_user(session, user_id)
    return respond(
        ser.user(services.update_user(session, user, body.model_dump(exclude_unset=True)))
    )


@router.delete("/user_management/users/{user_id}", status_code=204)
def delete_user(user_id: str, session: SessionDep) -> Response:
    services.delete_user(session, services.get_user(session, user_id))
    return Response(status_code=204)
