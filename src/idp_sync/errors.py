"""Errors are data: each carries its HTTP status and WorkOS error code.

They are raised by services and rendered in one place (``idp_sync.api.errors``) as
WorkOS error bodies: ``{"code": ..., "message": ..., "errors": [...]}``.
"""

from __future__ import annotations

from typing import Any


class IdpSyncError(Exception):
    """Base class: a client-visible error with a status and a stable code."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


class BadRequest(IdpSyncError):
    status_code = 400
    code = "bad_request"


class Unauthorized(IdpSyncError):
    status_code = 401
    code = "unauthorized"


class NotFound(IdpSyncError):
    status_code = 404
    code = "entity_not_found"


class Conflict(IdpSyncError):
    status_code = 409
    code = "conflict"


class Unprocessable(IdpSyncError):
    status_code = 422
    code = "invalid_request_parameters"
