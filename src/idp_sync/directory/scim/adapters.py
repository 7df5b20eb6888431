"""IdP quirks, normalised in one adapter per IdP before the service sees a request.

Each step names the IdP and the behaviour it absorbs. An adapter is chosen from the
directory's ``type``; the generic adapter applies every step, since unknown IdPs tend to
copy one of the big two. Every step is a no-op on an RFC-conformant request.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Step = Callable[[dict[str, Any]], dict[str, Any]]
MICROSOFT_SCHEMA_PREFIX = "http://schemas.microsoft.com/"
BOOLEAN_ATTRS = frozenset({"active"})


# --- Entra ID ---------------------------------------------------------------------------


def entra_lowercase_ops(body: dict[str, Any]) -> dict[str, Any]:
    """Entra ID sends PATCH op names capitalised (``Add``, ``Replace``, ``Remove``)."""
    for op in _operations(body):
        if isinstance(op.get("op"), str):
            op["op"] = op["op"].lower()
    return body


def entra_string_booleans(body: dict[str, Any]) -> dict[str, Any]:
    """Entra ID sends ``active`` as the strings ``"True"``/``"False"`` in PATCH values."""
    for op in _operations(body):
        path = op.get("path")
        if isinstance(path, str) and path.lower() in BOOLEAN_ATTRS:
            op["value"] = _boolean(op.get("value"))
        elif path is None and isinstance(op.get("value"), dict):
            op["value"] = _booleans_in(op["value"])
    return _booleans_in(body)


def entra_drop_microsoft_schemas(body: dict[str, Any]) -> dict[str, Any]:
    """Entra ID adds ``http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group``
    to ``schemas`` when it creates a group; it defines no attribute we store."""
    schemas = body.get("schemas")
    if isinstance(schemas, list):
        body["schemas"] = [
            s for s in schemas if not (isinstance(s, str) and s.startswith(MICROSOFT_SCHEMA_PREFIX))
        ]
    return body


# --- Okta -------------------------------------------------------------------------------


def okta_pathless_id(body: dict[str, Any]) -> dict[str, Any]:
    """Okta renames a group with a path-less ``replace`` whose value carries the group's
    own ``id`` next to ``displayName``: the id is read-only and must not fail the request
    (nor clear members, which the value does not name)."""
    for op in _operations(body):
        value = op.get("value")
        if op.get("path") is None and isinstance(value, dict):
            op["value"] = {k: v for k, v in value.items() if k.lower() != "id"}
    return body


def okta_members_refs(body: dict[str, Any]) -> dict[str, Any]:
    """Okta (and Entra ID) send ``"$ref": null`` and ``display`` in ``members`` entries; only
    ``value`` identifies a member, so the rest is dropped before validation."""
    members = body.get("members")
    if isinstance(members, list):
        body["members"] = [_member(m) for m in members]
    for op in _operations(body):
        path = op.get("path")
        if isinstance(path, str) and path.lower() == "members":
            value = op.get("value")
            op["value"] = [_member(m) for m in value] if isinstance(value, list) else value
    return body


# --- adapters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Adapter:
    name: str
    steps: Sequence[Step]

    def normalise(self, body: Any, *, fresh: bool = False) -> Any:
        """A normalised copy of a request body (resource or PatchOp); others pass through.
        ``fresh``: the body was just parsed and is the caller's alone, so it is normalised
        in place (copying a 5,000-member PATCH costs more than parsing it)."""
        if not isinstance(body, dict):
            return body
        result = body if fresh else copy.deepcopy(body)
        for step in self.steps:
            result = step(result)
        return result


ENTRA = Adapter("entra", (entra_lowercase_ops, entra_string_booleans, entra_drop_microsoft_schemas))
OKTA = Adapter("okta", (okta_pathless_id, okta_members_refs))
GENERIC = Adapter("generic", (*ENTRA.steps, *OKTA.steps))
ADAPTERS = {"okta scim v2.0": OKTA, "azure scim v2.0": ENTRA}


def adapter_for(directory_type: str) -> Adapter:
    return ADAPTERS.get(directory_type, GENERIC)


# --- helpers ----------------------------------------------------------------------------


def _operations(body: dict[str, Any]) -> list[dict[str, Any]]:
    ops = body.get("Operations")
    return [op for op in ops if isinstance(op, dict)] if isinstance(ops, list) else []


def _boolean(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _booleans_in(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _boolean(v) if k.lower() in BOOLEAN_ATTRS else v for k, v in value.items()}


def _member(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k in ("value", "display") and v is not None}
    return item
