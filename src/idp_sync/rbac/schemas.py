"""Request bodies of the RBAC API (wire models, not tables)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class PermissionCreate(Body):
    slug: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None


class NamedUpdate(Body):
    """PATCH of a permission or role: slugs are immutable."""

    slug: str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None


class RoleCreate(Body):
    slug: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None


class OrganizationRoleCreate(Body):
    slug: str | None = Field(default=None, min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None


class PermissionRef(Body):
    slug: str = Field(min_length=1)


class PermissionSet(Body):
    permissions: list[str]


class SettingsUpdate(Body):
    default_role_slug: str | None = None
    multiple_roles_enabled: bool | None = None
    priority_order: list[str] | None = None


class OrganizationSettingsUpdate(Body):
    default_role_slug: str | None = None
    priority_order: list[str] | None = None
