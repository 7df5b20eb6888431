"""Read paths that skip the ORM: one statement, one round trip (the hot GET endpoints).

The result has exactly the shape of ``serializers.membership``; a test compares the two.
The same statement runs on a sync session or, from ``async def`` endpoints, on the
runtime's ``Reader`` (async PostgreSQL pool; the threadpool on SQLite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from idp_sync.memberships.models import MembershipRole, OrganizationMembership
from idp_sync.memberships.serializers import membership_data
from idp_sync.organizations.models import Organization
from idp_sync.users.models import User
from idp_sync.wire import iso, iso_sql

if TYPE_CHECKING:
    from idp_sync.runtime import Reader

_OM = OrganizationMembership.__table__
_USER = User.__table__
_ORG = Organization.__table__
_ROLE = MembershipRole.__table__

# The user's columns as ``user_of_row`` reads them (its id is the membership's user_id).
USER_COLUMNS = (
    _USER.c.email,
    _USER.c.first_name,
    _USER.c.last_name,
    _USER.c.name,
    _USER.c.email_verified,
    _USER.c.profile_picture_url,
    _USER.c.external_id,
    _USER.c.locale,
    _USER.c.metadata.label("user_metadata"),
    _USER.c.last_sign_in_at,
    _USER.c.created_at.label("user_created_at"),
    _USER.c.updated_at.label("user_updated_at"),
)

_MEMBERSHIP_VIEW = (
    select(
        _OM,
        *USER_COLUMNS,
        _ORG.c.name.label("organization_name"),
        _ROLE.c.role_slug,
    )
    .select_from(
        _OM.join(_USER, _USER.c.id == _OM.c.user_id)
        .join(_ORG, _ORG.c.id == _OM.c.organization_id)
        .outerjoin(_ROLE, _ROLE.c.membership_id == _OM.c.id)
    )
    .order_by(_ROLE.c.position)
)


_MEMBERSHIP_BY_ID = _MEMBERSHIP_VIEW.where(_OM.c.id == bindparam("membership_id"))


def membership_view(session: Session, membership_id: str) -> dict[str, Any] | None:
    """The membership as the API returns it, or None if there is no such membership."""
    params = {"membership_id": membership_id}
    return _view(session.execute(_MEMBERSHIP_BY_ID, params).mappings().all())


async def read_membership_view(reader: Reader, membership_id: str) -> dict[str, Any] | None:
    """``membership_view`` for ``async def`` endpoints: same statement, same answer."""
    return _view(await reader.rows(_MEMBERSHIP_BY_ID, {"membership_id": membership_id}))


def _view(rows: Sequence[Mapping[Any, Any]]) -> dict[str, Any] | None:
    """One row per effective role (or one with no role), in role position order."""
    if not rows:
        return None
    row = rows[0]
    return {
        **membership_data(
            id=row["id"],
            user_id=row["user_id"],
            organization_id=row["organization_id"],
            status=row["status"],
            role_slugs=[r["role_slug"] for r in rows if r["role_slug"] is not None],
            directory_managed=row["directory_managed"],
            custom_attributes=row["custom_attributes"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        ),
        "user": user_of_row(row),
        "organization_name": row["organization_name"],
    }


def user_of_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """``users.serializers.user`` from a row with ``_MEMBERSHIP_VIEW``'s user columns."""
    return {
        "object": "user",
        "id": row["user_id"],
        "email": row["email"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "name": row["name"],
        "email_verified": row["email_verified"],
        "profile_picture_url": row["profile_picture_url"],
        "external_id": row["external_id"],
        "locale": row["locale"],
        "metadata": dict(row["user_metadata"] or {}),
        "last_sign_in_at": iso(row["last_sign_in_at"]),
        "created_at": iso(row["user_created_at"]),
        "updated_at": iso(row["user_updated_at"]),
    }


def user_json_sql(alias: str) -> str:
    """``user_of_row``'s object built by PostgreSQL (``jsonb``) from the ``users`` row
    ``alias``, for statements that store or return it without a round trip through
    Python. A test renders users both ways and compares them."""
    u = alias
    return (
        "jsonb_build_object("
        f"'object', 'user', 'id', {u}.id, 'email', {u}.email, "
        f"'first_name', {u}.first_name, 'last_name', {u}.last_name, 'name', {u}.name, "
        f"'email_verified', {u}.email_verified, "
        f"'profile_picture_url', {u}.profile_picture_url, "
        f"'external_id', {u}.external_id, 'locale', {u}.locale, "
        f"'metadata', coalesce({u}.metadata, CAST('{{}}' AS jsonb)), "
        f"'last_sign_in_at', {iso_sql(f'{u}.last_sign_in_at')}, "
        f"'created_at', {iso_sql(f'{u}.created_at')}, "
        f"'updated_at', {iso_sql(f'{u}.updated_at')})"
    )
