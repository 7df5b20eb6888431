"""SCIM errors as data (RFC 7644 §3.12): each carries its HTTP status and ``scimType``.

Raised by the SCIM layer and the mirror services, rendered in one place by the SCIM
route class as ``urn:ietf:params:scim:api:messages:2.0:Error`` bodies.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """A client-visible SCIM error; ``scim_type`` is one of RFC 7644 Table 9 or None."""

    status_code = 400
    scim_type: str | None = None

    def __init__(self, detail: str, *, scim_type: str | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if scim_type is not None:
            self.scim_type = scim_type
        if status is not None:
            self.status_code = status

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schemas": [ERROR_SCHEMA],
            "status": str(self.status_code),  # RFC 7644 §3.12: a string
            "detail": self.detail,
        }
        if self.scim_type is not None:
            body["scimType"] = self.scim_type
        return body


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class InvalidValue(ScimError):
    scim_type = "invalidValue"


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class NoTarget(ScimError):
    scim_type = "noTarget"


class Mutability(ScimError):
    scim_type = "mutability"


class Uniqueness(ScimError):
    status_code = 409
    scim_type = "uniqueness"


class ScimNotFound(ScimError):
    status_code = 404


class ScimUnauthorized(ScimError):
    status_code = 401
