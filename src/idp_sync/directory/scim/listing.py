"""The parameters of a SCIM query: filter, paging and projection (RFC 7644 §3.4.2), read
from the URL of a GET or from the body of a POST ``.search`` (RFC 7644 §3.4.3).

Both give the same ``Listing``, so a search answers exactly what the equivalent GET does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from idp_sync.directory.scim import schemas
from idp_sync.directory.scim.errors import InvalidSyntax, InvalidValue

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


class Listing:
    """Query parameters of a SCIM list (RFC 7644 §3.4.2): filter, paging, projection."""

    filter: str | None
    start: int
    count: int
    attributes: list[str]
    excluded: list[str]

    def __init__(
        self,
        filter: Annotated[str | None, Query()] = None,
        startIndex: Annotated[str | None, Query()] = None,
        count: Annotated[str | None, Query()] = None,
        attributes: Annotated[str | None, Query()] = None,
        excludedAttributes: Annotated[str | None, Query()] = None,
    ) -> None:
        self._set(
            filter,
            _int(startIndex, 1, "startIndex"),
            _int(count, schemas.DEFAULT_COUNT, "count"),
            schemas.split_list(attributes),
            schemas.split_list(excludedAttributes),
        )

    @classmethod
    def from_search(cls, body: dict[str, Any] | None) -> Listing:
        """The parameters of a SearchRequest body (RFC 7644 §3.4.3).

        ``sortBy``/``sortOrder`` are ignored, as on GET: ServiceProviderConfig advertises
        ``sort.supported: false`` and results keep their stable id order. ``schemas`` is
        not required, as PATCH does not require it either (no IdP sends it wrong).
        """
        body = body or {}
        listing = cls.__new__(cls)
        listing._set(
            _text(body.get("filter"), "filter"),
            _body_int(body.get("startIndex"), 1, "startIndex"),
            _body_int(body.get("count"), schemas.DEFAULT_COUNT, "count"),
            _names(body.get("attributes"), "attributes"),
            _names(body.get("excludedAttributes"), "excludedAttributes"),
        )
        return listing

    def _set(
        self, filter: str | None, start: int, count: int, attributes: list[str], excluded: list[str]
    ) -> None:
        self.filter = filter
        # RFC 7644 §3.4.2.4: startIndex < 1 is 1; count < 0 is 0; the server may cap count.
        self.start = max(start, 1)
        self.count = min(max(count, 0), schemas.MAX_COUNT)
        self.attributes = attributes
        self.excluded = excluded

    def wants_members(self) -> bool:
        projected = schemas.project({"members": True}, self.attributes, self.excluded)
        return "members" in projected


def _int(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidValue(f"{name} must be an integer") from None


def _body_int(raw: Any, default: int, name: str) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidValue(f"{name} must be an integer")
    return raw


def _text(raw: Any, name: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidSyntax(f"{name} must be a string")
    return raw


def _names(raw: Any, name: str) -> list[str]:
    """RFC 7644 §3.4.3 gives ``attributes`` as a list of strings; a comma-separated string,
    as in the URL form, is accepted too."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return schemas.split_list(raw)
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise InvalidSyntax(f"{name} must be a list of strings")
    return [item for item in raw if item.strip()]
