"""Users as ``workos.common.models.User`` expects them."""

from __future__ import annotations

from typing import Any

from idp_sync.users.models import User
from idp_sync.wire import iso


def user(u: User) -> dict[str, Any]:
    return {
        "object": "user",
        "id": u.id,
        "email": u.email,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "name": u.name,
        "email_verified": u.email_verified,
        "profile_picture_url": u.profile_picture_url,
        "external_id": u.external_id,
        "locale": u.locale,
        "metadata": dict(u.metadata_ or {}),
        "last_sign_in_at": iso(u.last_sign_in_at),
        "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
    }
