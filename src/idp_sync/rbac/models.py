"""RBAC tables: environment settings, permissions, roles and their permissions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp_sync.db import Base, JSONType, UTCDateTime, utcnow

ENV_SCOPE = "environment"


class EnvironmentSettings(Base):
    """The single row of environment-wide authorization settings (DESIGN §2)."""

    __tablename__ = "environment_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    default_role_slug: Mapped[str] = mapped_column(String(100))
    multiple_roles_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    priority_order: Mapped[list[str]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Permission(Base):
    __tablename__ = "permissions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    system: Mapped[bool] = mapped_column(Boolean, default=False)
    resource_type_slug: Mapped[str] = mapped_column(String(100), default="organization")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Role(Base):
    """An environment role (scope ``environment``) or an organization role (scope = org id)."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("scope", "slug"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(String(40))
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    resource_type_slug: Mapped[str] = mapped_column(String(100), default="organization")
    # Set when deletion starts: from then on the role is never resolved nor assignable.
    deleting_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    permissions: Mapped[list[Permission]] = relationship(
        secondary="role_permissions", order_by=Permission.slug, lazy="selectin"
    )

    @property
    def type(self) -> str:
        return "EnvironmentRole" if self.organization_id is None else "OrganizationRole"


class RolePermission(Base):
    __tablename__ = "role_permissions"

    role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    permission_id: Mapped[str] = mapped_column(
        ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class OrganizationAuthorizationSettings(Base):
    """An organization's overrides: its default role and, optionally, its priority order."""

    __tablename__ = "organization_authorization_settings"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    default_role_id: Mapped[str | None] = mapped_column(ForeignKey("roles.id", ondelete="SET NULL"))
    priority_order: Mapped[list[str] | None] = mapped_column(JSONType)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {"organization_id": self.organization_id, "default_role_id": self.default_role_id}
