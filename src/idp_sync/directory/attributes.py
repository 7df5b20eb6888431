"""The columns of the mirror derived from SCIM attributes (RFC 7643 §4.1), validated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idp_sync.directory.scim.errors import InvalidValue


@dataclass(frozen=True)
class UserColumns:
    user_name: str
    external_id: str | None
    display_name: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    active: bool


def user_columns(attrs: dict[str, Any]) -> UserColumns:
    """The filterable columns of a SCIM User (RFC 7643 §4.1), validated."""
    user_name = attr_get(attrs, "userName")
    if not isinstance(user_name, str) or not user_name.strip():
        raise InvalidValue("userName is required")  # RFC 7643 §4.1.1
    active = attr_get(attrs, "active")
    if active is None:
        active = True
    if not isinstance(active, bool):
        raise InvalidValue("active must be a boolean")
    name = attr_get(attrs, "name")
    name = name if isinstance(name, dict) else {}
    return UserColumns(
        user_name=user_name.strip(),
        external_id=clean_text(attr_get(attrs, "externalId")),
        display_name=clean_text(attr_get(attrs, "displayName")),
        email=_primary_email(attr_get(attrs, "emails")),
        first_name=clean_text(attr_get(name, "givenName")),
        last_name=clean_text(attr_get(name, "familyName")),
        active=active,
    )


def column_values(columns: UserColumns) -> dict[str, Any]:
    return {
        "user_name": columns.user_name,
        "user_name_key": columns.user_name.lower(),
        "external_id": columns.external_id,
        "display_name": columns.display_name,
        "email": columns.email,
        "first_name": columns.first_name,
        "last_name": columns.last_name,
        "active": columns.active,
    }


def attr_key(attrs: dict[str, Any], name: str) -> str:
    lowered = name.lower()
    return next((k for k in attrs if k.lower() == lowered), name)


def attr_get(attrs: dict[str, Any], name: str) -> Any:
    return attrs.get(attr_key(attrs, name))


def clean_text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _primary_email(emails: Any) -> str | None:
    if not isinstance(emails, list):
        return None
    items = [e for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]
    primary = next((e for e in items if e.get("primary") is True), items[0] if items else None)
    return primary["value"].strip().lower() if primary else None
