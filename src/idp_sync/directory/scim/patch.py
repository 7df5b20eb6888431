"""PATCH application (RFC 7644 §3.5.2), pure: no I/O, no database, no IdP quirks.

``apply_patch`` applies operations to a resource's attributes (a JSON dict) and returns
a new dict; it is idempotent: applying the same operations twice gives the same result
(adding a value already present is a no-op, RFC 7644 §3.5.2.1). ``split_members`` takes
the ``members`` operations out of a Group PATCH so that the service can apply them as
set-based statements instead of rewriting a member list.

Quirks of particular IdPs are normalised before this module (``scim.adapters``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scim2_filter_parser import ast as scim_ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError

from idp_sync.directory.scim.errors import InvalidPath, InvalidSyntax, InvalidValue, NoTarget

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
KNOWN_EXTENSIONS = frozenset({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"})
READ_ONLY = frozenset({"id", "meta", "schemas"})  # RFC 7643 §3.1: never set by a client
Op = Literal["add", "replace", "remove"]


@dataclass(frozen=True)
class PatchOp:
    op: Op
    path: str | None = None
    value: Any = None


@dataclass(frozen=True)
class Path:
    """``[urn:]attr[.sub]`` or ``attr[filter][.sub]`` (RFC 7644 §3.5.2, PATH ABNF)."""

    schema: str | None  # an extension URN; None for core attributes
    attr: str
    value_filter: Any = None  # scim2-filter-parser AST, or None
    sub: str | None = None


@dataclass
class MemberDelta:
    """The net effect of a Group PATCH's member operations, in request order."""

    clear: bool = False
    add: dict[str, None] = field(default_factory=dict)  # ordered set
    remove: set[str] = field(default_factory=set)

    def added(self, ids: Sequence[str]) -> None:
        for member_id in ids:
            self.add[member_id] = None
            self.remove.discard(member_id)

    def removed(self, ids: Sequence[str]) -> None:
        for member_id in ids:
            self.add.pop(member_id, None)
            self.remove.add(member_id)

    @property
    def empty(self) -> bool:
        return not (self.clear or self.add or self.remove)


# --- parsing ----------------------------------------------------------------------------


def parse_ops(body: Any) -> list[PatchOp]:
    """The operations of a PatchOp request body, validated (RFC 7644 §3.5.2)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("the PATCH body must be a JSON object")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("'Operations' must be a non-empty list")
    ops = []
    for raw in operations:
        if not isinstance(raw, dict):
            raise InvalidSyntax("each operation must be an object")
        name = raw.get("op")
        if name not in ("add", "replace", "remove"):
            raise InvalidSyntax(f"unknown op '{name}'")
        path = raw.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise InvalidPath("'path' must be a non-empty string")
        if name != "remove" and "value" not in raw:
            raise InvalidValue(f"'{name}' needs a value")
        if name == "remove" and path is None:
            raise NoTarget("'remove' needs a path")  # RFC 7644 §3.5.2.2
        ops.append(PatchOp(name, path.strip() if path else None, raw.get("value")))
    return ops


def parse_path(text: str) -> Path:
    schema = None
    head, bracket, tail = text.partition("[")
    if head.lower() in KNOWN_EXTENSIONS:
        return Path(None, head)  # the whole extension object (RFC 7643 §3.3)
    if head.lower().startswith("urn:"):
        schema, _, head = head.rpartition(":")
        if schema.lower() in (CORE_USER.lower(), CORE_GROUP.lower()):
            schema = None
    value_filter = None
    if bracket:
        inner, closing, rest = tail.rpartition("]")
        if not closing:
            raise InvalidPath(f"unbalanced '[' in path '{text}'")
        value_filter = _parse_filter(inner)
        sub = rest[1:] if rest.startswith(".") else None
        if rest and sub is None:
            raise InvalidPath(f"invalid path '{text}'")
        return Path(schema, head, value_filter, sub)
    attr, _, sub = head.partition(".")
    if not attr:
        raise InvalidPath(f"invalid path '{text}'")
    return Path(schema, attr, None, sub or None)


def _parse_filter(text: str) -> Any:
    try:
        tree = SCIMParser().parse(SCIMLexer().tokenize(text))
    except (SCIMParserError, ValueError, TypeError, IndexError):
        raise InvalidPath(f"invalid value filter '{text}'") from None
    if tree is None:
        raise InvalidPath("empty value filter")
    return tree


# --- application ------------------------------------------------------------------------


def apply_patch(resource: dict[str, Any], ops: Sequence[PatchOp]) -> dict[str, Any]:
    """A copy of ``resource`` with ``ops`` applied in order (RFC 7644 §3.5.2)."""
    result = copy.deepcopy(resource)
    for op in ops:
        if op.path is None:
            _apply_pathless(result, op)
        else:
            _apply_path(result, op.op, parse_path(op.path), op.value)
    return result


def _apply_pathless(resource: dict[str, Any], op: PatchOp) -> None:
    # RFC 7644 §3.5.2.1/§3.5.2.3: without a path, the value holds the attributes to change.
    if not isinstance(op.value, dict):
        raise InvalidValue(f"'{op.op}' without a path needs an object value")
    for key, value in op.value.items():
        if key.lower() in READ_ONLY:
            continue  # e.g. Okta sends the group's own id with a rename
        if isinstance(value, dict) and _is_schema_urn(key, resource):
            container = _child(resource, key, create=True)
            for sub_key, sub_value in value.items():
                _set(container, sub_key, sub_value, op.op)
            continue
        _apply_path(resource, op.op, parse_path(key), value)


def _is_schema_urn(key: str, resource: dict[str, Any]) -> bool:
    """An extension schema's URN (its attributes are nested under it, RFC 7643 §3.3)."""
    lowered = key.lower()
    if not lowered.startswith("urn:"):
        return False
    schemas = [s.lower() for s in resource.get("schemas", []) if isinstance(s, str)]
    return lowered in schemas or lowered.endswith((":user", ":group"))


def _apply_path(resource: dict[str, Any], op: Op, path: Path, value: Any) -> None:
    container = resource if path.schema is None else _child(resource, path.schema, create=True)
    if path.value_filter is not None:
        _apply_filtered(container, op, path, value)
    elif path.sub is not None:
        parent = _child(container, path.attr, create=op != "remove")
        if parent is None:
            return
        if op == "remove":
            parent.pop(_key(parent, path.sub), None)
        else:
            _set(parent, path.sub, value, op)
    elif op == "remove":
        container.pop(_key(container, path.attr), None)
    else:
        _set(container, path.attr, value, op)
    if path.schema is not None and op == "remove" and not container:
        resource.pop(_key(resource, path.schema), None)


def _set(container: dict[str, Any], name: str, value: Any, op: Op) -> None:
    key = _key(container, name)
    current = container.get(key)
    if op == "add" and isinstance(current, list):
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in current:  # RFC 7644 §3.5.2.1: existing values are not duplicated
                current.append(copy.deepcopy(item))
    elif isinstance(current, dict) and isinstance(value, dict):
        for sub_key, sub_value in value.items():  # complex attributes merge their sub-attributes
            current[_key(current, sub_key)] = copy.deepcopy(sub_value)
    else:
        container[key] = copy.deepcopy(value)
    if isinstance(container[key], list):
        container[key] = _dedupe(container[key])


def _dedupe(items: list[Any]) -> list[Any]:
    """A multi-valued attribute holds no duplicate values (RFC 7644 §3.5.2.1), so that
    applying a PATCH again never grows it."""
    unique: list[Any] = []
    for item in items:
        if item not in unique:
            unique.append(item)
    return unique


def _apply_filtered(container: dict[str, Any], op: Op, path: Path, value: Any) -> None:
    key = _key(container, path.attr)
    items = container.get(key)
    if items is None:
        items = []
    if not isinstance(items, list):
        raise InvalidPath(f"'{path.attr}' is not multi-valued")
    selected = path.value_filter
    matches = [i for i in items if isinstance(i, dict) and _matches(i, selected)]
    if op == "remove":
        if path.sub is None:
            items = [item for item in items if item not in matches]
        else:
            for item in matches:
                item.pop(_key(item, path.sub), None)
        _store_list(container, key, items)
        return
    if not matches:
        if path.sub is None and op == "replace":
            raise NoTarget(f"no value of '{path.attr}' matches the filter")
        # `emails[type eq "work"].value` with no such entry creates it (the filter's
        # `eq` terms become its sub-attributes).
        matches = [_seed(path.value_filter)]
        items.append(matches[0])
    for item in matches:
        if path.sub is not None:
            item[_key(item, path.sub)] = copy.deepcopy(value)
        elif isinstance(value, dict):
            for sub_key, sub_value in value.items():
                item[_key(item, sub_key)] = copy.deepcopy(sub_value)
        else:
            raise InvalidValue(f"'{path.attr}[...]' needs an object value")
    _store_list(container, key, items)


def _store_list(container: dict[str, Any], key: str, items: list[Any]) -> None:
    if items:
        container[key] = _dedupe(items)
    else:
        container.pop(key, None)


def _seed(node: Any) -> dict[str, Any]:
    """A new multi-valued entry from the ``eq`` terms of a value filter."""
    seed: dict[str, Any] = {}
    if isinstance(node, scim_ast.Filter):
        if not node.negated:
            seed.update(_seed(node.expr))
    elif isinstance(node, scim_ast.LogExpr) and node.op.lower() == "and":
        seed.update(_seed(node.expr1))
        seed.update(_seed(node.expr2))
    elif isinstance(node, scim_ast.AttrExpr) and str(node.value).lower() == "eq":
        seed[str(node.attr_path.attr_name)] = _literal(node.comp_value.value)
    return seed


def _matches(item: dict[str, Any], node: Any) -> bool:
    if isinstance(node, scim_ast.Filter):
        result = _matches(item, node.expr)
        return not result if node.negated else result
    if isinstance(node, scim_ast.LogExpr):
        left, right = _matches(item, node.expr1), _matches(item, node.expr2)
        return (left and right) if node.op.lower() == "and" else (left or right)
    if isinstance(node, scim_ast.AttrExpr):
        return _compare(item, node)
    raise InvalidPath("unsupported value filter")


def _compare(item: dict[str, Any], node: Any) -> bool:
    name = str(node.attr_path.attr_name)
    actual = item.get(_key(item, name))
    op = str(node.value).lower()
    if op == "pr":
        return actual not in (None, "", [], {})
    expected = _literal(node.comp_value.value)
    if isinstance(actual, str) and isinstance(expected, str):
        actual, expected = actual.lower(), expected.lower()  # RFC 7643 §2.3.1
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if not isinstance(actual, str) or not isinstance(expected, str):
        return False
    checks = {
        "co": expected in actual,
        "sw": actual.startswith(expected),
        "ew": actual.endswith(expected),
        "gt": actual > expected,
        "ge": actual >= expected,
        "lt": actual < expected,
        "le": actual <= expected,
    }
    return checks.get(op, False)


def _literal(raw: Any) -> Any:
    if isinstance(raw, str) and raw in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[raw]
    return raw


def _key(container: dict[str, Any], name: str) -> str:
    """The existing key matching ``name`` case-insensitively (RFC 7643 §2.1), else ``name``."""
    if name in container:
        return name
    lowered = name.lower()
    return next((k for k in container if k.lower() == lowered), name)


def _child(container: dict[str, Any], name: str, *, create: bool) -> Any:
    key = _key(container, name)
    child = container.get(key)
    if not isinstance(child, dict):
        if not create:
            return None
        child = container[key] = {}
    return child


# --- group members ----------------------------------------------------------------------


def split_members(ops: Sequence[PatchOp]) -> tuple[list[PatchOp], MemberDelta]:
    """Separate member operations from the others; members become a set delta."""
    rest: list[PatchOp] = []
    delta = MemberDelta()
    for op in ops:
        if op.path is None and isinstance(op.value, dict):
            value = dict(op.value)
            key = _key(value, "members")
            if key in value:
                _member_op(delta, op.op, value.pop(key))
            if value:
                rest.append(PatchOp(op.op, None, value))
            continue
        if op.path is not None and op.path.lower().startswith("members"):
            _member_path_op(delta, op)
            continue
        rest.append(op)
    return rest, delta


def _member_path_op(delta: MemberDelta, op: PatchOp) -> None:
    path = parse_path(op.path or "")
    if path.value_filter is None:
        _member_op(delta, op.op, op.value)
        return
    selected = _seed(path.value_filter).get("value")
    if selected is None or op.op != "remove":
        raise InvalidPath("only 'remove' of members[value eq \"...\"] is supported")
    delta.removed([str(selected)])


def _member_op(delta: MemberDelta, op: Op, value: Any) -> None:
    ids = member_ids(value)
    if op == "replace":
        delta.clear, delta.add, delta.remove = True, {}, set()
        delta.added(ids)
    elif op == "add":
        delta.added(ids)
    elif value is None:  # remove all members (RFC 7644 §3.5.2.2)
        delta.clear, delta.add, delta.remove = True, {}, set()
    else:
        delta.removed(ids)


def member_ids(value: Any) -> list[str]:
    """The ids in a ``members`` value: ``[{"value": id, "display": ..., "$ref": ...}]``."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        member = item.get(_key(item, "value")) if isinstance(item, dict) else None
        if not isinstance(member, str) or not member:
            raise InvalidValue("each member needs a string 'value'")
        ids.append(member)
    return ids
