"""Organization memberships, their effective roles, the roles set by API, and the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp_sync.db import Base, JSONType, UTCDateTime, utcnow
from idp_sync.users.models import User


class OrganizationMembership(Base):
    __tablename__ = "organization_memberships"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id"),
        # Bulk jobs find affected memberships by query and walk them in id order (keyset).
        Index("ix_organization_memberships_uses_default_id", "uses_default", "id"),
        Index("ix_organization_memberships_organization_id_id", "organization_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    directory_managed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Provenance of the effective roles, as the resolver returned them (DESIGN §3).
    role_source: Mapped[str] = mapped_column(String(20), default="default")
    uses_default: Mapped[bool] = mapped_column(Boolean, default=True)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    roles: Mapped[list[MembershipRole]] = relationship(
        order_by="MembershipRole.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )
    # Loaded on demand: reads never need them; recompute loads a batch's in one query.
    api_roles: Mapped[list[MembershipApiRole]] = relationship(
        order_by="MembershipApiRole.position",
        cascade="all, delete-orphan",
        lazy="select",
    )


class MembershipRole(Base):
    """An effective role of a membership; position 0 is the primary ``role``."""

    __tablename__ = "organization_membership_roles"
    # Role deletion walks a role's holders in membership order.
    __table_args__ = (
        Index("ix_organization_membership_roles_role_id_membership_id", "role_id", "membership_id"),
    )

    membership_id: Mapped[str] = mapped_column(
        ForeignKey("organization_memberships.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    role_slug: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)


class MembershipApiRole(Base):
    """A role set through the API: kept underneath IdP-sourced roles (DESIGN §3)."""

    __tablename__ = "organization_membership_api_roles"
    __table_args__ = (
        Index(
            "ix_organization_membership_api_roles_role_id_membership_id", "role_id", "membership_id"
        ),
    )

    membership_id: Mapped[str] = mapped_column(
        ForeignKey("organization_memberships.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    role_slug: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)


class MembershipAudit(Base):
    """One row per change of a membership's effective roles: who, why, from what, to what."""

    __tablename__ = "organization_membership_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    membership_id: Mapped[str] = mapped_column(String(40), index=True)
    organization_id: Mapped[str] = mapped_column(String(40))
    before_roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    after_roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    source: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
