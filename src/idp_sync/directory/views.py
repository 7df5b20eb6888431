"""Read side of the directory mirror for the management API: queries and the roles and
groups embedded in WorkOS's directory user objects."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from idp_sync.directory import serializers as ser
from idp_sync.directory.models import DirectoryGroup, DirectoryGroupMember, DirectoryUser
from idp_sync.errors import NotFound, Unprocessable
from idp_sync.memberships.models import MembershipRole
from idp_sync.memberships.models import OrganizationMembership as OM

__all__ = ["DirectoryUser", "get_group", "get_user", "groups_query", "render_users", "users_query"]


def _need_one(**filters: str | None) -> None:
    if not any(filters.values()):
        names = " or ".join(filters)
        raise Unprocessable(
            f"give {names}", errors=[{"code": "required", "field": next(iter(filters))}]
        )


def users_query(
    *, directory: str | None, group: str | None, idp_id: str | None, email: str | None
) -> Select[tuple[DirectoryUser]]:
    _need_one(directory=directory, group=group)
    query = select(DirectoryUser).where(DirectoryUser.deleted_at.is_(None))
    if directory:
        query = query.where(DirectoryUser.directory_id == directory)
    if group:
        in_group = select(DirectoryGroupMember.user_id).where(
            DirectoryGroupMember.group_id == group
        )
        query = query.where(DirectoryUser.id.in_(in_group))
    if idp_id:
        query = query.where(DirectoryUser.external_id == idp_id)
    if email:
        query = query.where(DirectoryUser.email == email.strip().lower())
    return query


def groups_query(*, directory: str | None, user: str | None) -> Select[tuple[DirectoryGroup]]:
    _need_one(directory=directory, user=user)
    query = select(DirectoryGroup).where(DirectoryGroup.deleted_at.is_(None))
    if directory:
        query = query.where(DirectoryGroup.directory_id == directory)
    if user:
        of_user = select(DirectoryGroupMember.group_id).where(DirectoryGroupMember.user_id == user)
        query = query.where(DirectoryGroup.id.in_(of_user))
    return query


def get_user(session: Session, user_id: str) -> DirectoryUser:
    user = session.get(DirectoryUser, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound(f"directory user {user_id} not found")
    return user


def get_group(session: Session, group_id: str) -> DirectoryGroup:
    group = session.get(DirectoryGroup, group_id)
    if group is None or group.deleted_at is not None:
        raise NotFound(f"directory group {group_id} not found")
    return group


def render_users(session: Session, users: list[DirectoryUser]) -> list[dict[str, Any]]:
    """Users with ``role``/``roles`` (their membership's) and ``groups``, in three queries."""
    ids = [u.id for u in users]
    roles = _roles(session, ids)
    groups = _groups(session, ids)
    return [
        ser.directory_user_with_groups(u, roles.get(u.id, []), groups.get(u.id, [])) for u in users
    ]


def _roles(session: Session, ids: list[str]) -> dict[str, list[str]]:
    rows = session.execute(
        select(DirectoryUser.id, MembershipRole.role_slug)
        .join(
            OM,
            and_(
                OM.user_id == DirectoryUser.user_id,
                OM.organization_id == DirectoryUser.organization_id,
            ),
        )
        .join(MembershipRole, MembershipRole.membership_id == OM.id)
        .where(DirectoryUser.id.in_(ids))
        .order_by(MembershipRole.position)
    ).all()
    found: dict[str, list[str]] = defaultdict(list)
    for user_id, slug in rows:
        found[user_id].append(slug)
    return found


def _groups(session: Session, ids: list[str]) -> dict[str, list[DirectoryGroup]]:
    rows = session.execute(
        select(DirectoryGroupMember.user_id, DirectoryGroup)
        .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
        .where(DirectoryGroupMember.user_id.in_(ids), DirectoryGroup.deleted_at.is_(None))
        .order_by(DirectoryGroup.id)
    ).all()
    found: dict[str, list[DirectoryGroup]] = defaultdict(list)
    for user_id, group in rows:
        found[user_id].append(group)
    return found
