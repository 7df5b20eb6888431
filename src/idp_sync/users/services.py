"""Use cases for users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.errors import Conflict, NotFound, Unprocessable
from idp_sync.ids import new_id
from idp_sync.memberships.models import OrganizationMembership
from idp_sync.users.models import User


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or " " in value:
        raise Unprocessable(
            f"'{email}' is not an email address",
            errors=[{"code": "invalid_email", "field": "email"}],
        )
    return value


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def _check_unique(
    session: Session, email: str | None, external_id: str | None, own: str | None
) -> None:
    if email is not None:
        other = session.scalar(select(User.id).where(User.email == email))
        if other is not None and other != own:
            raise Conflict(
                f"a user with email '{email}' already exists", code="email_not_available"
            )
    if external_id is not None:
        other = session.scalar(select(User.id).where(User.external_id == external_id))
        if other is not None and other != own:
            raise Conflict(f"external_id '{external_id}' is already used", code="external_id_taken")


def create_user(session: Session, fields: dict[str, Any]) -> User:
    email = normalise_email(fields["email"])
    _check_unique(session, email, fields.get("external_id"), None)
    now = utcnow()
    user = User(
        id=new_id("user"),
        email=email,
        first_name=fields.get("first_name"),
        last_name=fields.get("last_name"),
        name=fields.get("name"),
        email_verified=bool(fields.get("email_verified")),
        external_id=fields.get("external_id"),
        metadata_=fields.get("metadata") or {},
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, user: User, changes: dict[str, Any]) -> User:
    email = normalise_email(changes["email"]) if changes.get("email") is not None else None
    _check_unique(session, email, changes.get("external_id"), user.id)
    if email is not None:
        user.email = email
    for field in ("first_name", "last_name", "name", "email_verified", "locale"):
        if changes.get(field) is not None:
            setattr(user, field, changes[field])
    if "external_id" in changes:
        user.external_id = changes["external_id"]
    if "metadata" in changes:
        user.metadata_ = changes["metadata"] or {}
    user.updated_at = utcnow()
    return user


def delete_user(session: Session, user: User) -> None:
    from idp_sync.memberships.services import delete_membership

    memberships = session.scalars(
        select(OrganizationMembership).where(OrganizationMembership.user_id == user.id)
    ).all()
    for membership in memberships:
        delete_membership(session, membership)
    session.delete(user)


def list_query(*, organization_id: str | None, email: str | None) -> Select[tuple[User]]:
    query = select(User)
    if organization_id:
        query = query.where(
            User.id.in_(
                select(OrganizationMembership.user_id).where(
                    OrganizationMembership.organization_id == organization_id
                )
            )
        )
    if email:
        query = query.where(User.email == email.strip().lower())
    return query
