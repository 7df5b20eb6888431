"""SCIM filters (RFC 7644 §3.4.2.2) turned into SQLAlchemy expressions with bound values.

The filter text is parsed by scim2-filter-parser into its AST; this module walks the AST
and builds ``ColumnElement`` conditions from a whitelist of attributes. Values are always
bound parameters: no SQL is ever built from the filter's text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from scim2_filter_parser import ast as scim_ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError
from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute

from idp_sync.directory.models import DirectoryGroup, DirectoryGroupMember, DirectoryUser
from idp_sync.directory.scim.errors import InvalidFilter

# "key": a text attribute whose column the mirror stores lower-cased (userName's
# ``user_name_key``, the primary email, a group's ``display_name_key``): compared with the
# lower-cased value and no ``lower()`` in SQL, so the per-directory index answers it.
Kind = Literal["text", "key", "exact", "bool", "datetime"]
CORE_URNS = (
    "urn:ietf:params:scim:schemas:core:2.0:user",
    "urn:ietf:params:scim:schemas:core:2.0:group",
)
MAX_FILTER_LENGTH = 4096


@dataclass(frozen=True)
class Attr:
    """A filterable attribute: its column and how its values compare (RFC 7643 §2.3)."""

    column: InstrumentedAttribute[Any]
    kind: Kind


# A special attribute answering with a whole condition (e.g. group membership).
Special = Callable[[str, Any], ColumnElement[bool]]


def _member_of_group(op: str, value: Any) -> ColumnElement[bool]:
    # Entra ID checks membership with `members[value eq "<user id>"]` on Groups.
    if op != "eq":
        raise InvalidFilter("members.value supports only eq")
    members = select(DirectoryGroupMember.group_id).where(
        DirectoryGroupMember.user_id == str(value)
    )
    return DirectoryGroup.id.in_(members)


USER_ATTRS: Mapping[str, Attr | Special] = {
    "id": Attr(DirectoryUser.id, "exact"),
    "username": Attr(DirectoryUser.user_name_key, "key"),
    "externalid": Attr(DirectoryUser.external_id, "exact"),
    "displayname": Attr(DirectoryUser.display_name, "text"),
    "emails.value": Attr(DirectoryUser.email, "key"),
    "emails": Attr(DirectoryUser.email, "key"),
    "name.givenname": Attr(DirectoryUser.first_name, "text"),
    "name.familyname": Attr(DirectoryUser.last_name, "text"),
    "active": Attr(DirectoryUser.active, "bool"),
    "meta.lastmodified": Attr(DirectoryUser.updated_at, "datetime"),
    "meta.created": Attr(DirectoryUser.created_at, "datetime"),
}
GROUP_ATTRS: Mapping[str, Attr | Special] = {
    "id": Attr(DirectoryGroup.id, "exact"),
    "displayname": Attr(DirectoryGroup.display_name_key, "key"),
    "externalid": Attr(DirectoryGroup.external_id, "exact"),
    "meta.lastmodified": Attr(DirectoryGroup.updated_at, "datetime"),
    "meta.created": Attr(DirectoryGroup.created_at, "datetime"),
    "members.value": _member_of_group,
    "members": _member_of_group,
}


def parse_filter(text: str, attrs: Mapping[str, Attr | Special]) -> ColumnElement[bool]:
    """The condition for the SCIM filter ``text``; ``InvalidFilter`` (400) if it is not one."""
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter("the filter is too long")
    try:
        tree = SCIMParser().parse(SCIMLexer().tokenize(text))
    except (SCIMParserError, ValueError, TypeError, IndexError) as exc:
        raise InvalidFilter(f"the filter could not be parsed: {exc}") from None
    if tree is None:
        raise InvalidFilter("the filter is empty")
    return _Builder(attrs).build(tree, None)


class _Builder:
    def __init__(self, attrs: Mapping[str, Attr | Special]) -> None:
        self.attrs = attrs

    def build(self, node: Any, namespace: str | None) -> ColumnElement[bool]:
        if isinstance(node, scim_ast.Filter):
            inner_ns = namespace
            if node.namespace is not None:  # valuePath: emails[type eq "work"]
                inner_ns = _path_key(node.namespace, None)
            condition = self.build(node.expr, inner_ns)
            return not_(condition) if node.negated else condition
        if isinstance(node, scim_ast.LogExpr):
            left = self.build(node.expr1, namespace)
            right = self.build(node.expr2, namespace)
            return and_(left, right) if node.op.lower() == "and" else or_(left, right)
        if isinstance(node, scim_ast.AttrExpr):
            return self._comparison(node, namespace)
        raise InvalidFilter(f"unsupported filter element {type(node).__name__}")

    def _comparison(self, node: Any, namespace: str | None) -> ColumnElement[bool]:
        if isinstance(node.attr_path.attr_name, scim_ast.Filter):
            raise InvalidFilter("nested value filters are not supported")
        key = _path_key(node.attr_path, namespace)
        target = self.attrs.get(key)
        if target is None:
            raise InvalidFilter(f"filtering on '{key}' is not supported")
        op = str(node.value).lower()
        value = None if node.comp_value is None else node.comp_value.value
        if not isinstance(target, Attr):
            return target(op, value)
        return _compare(target, op, value)


def _path_key(path: Any, namespace: str | None) -> str:
    name = str(path.attr_name)
    uri = (path.uri or "").rstrip(":").lower()
    if uri and uri not in CORE_URNS:
        raise InvalidFilter(f"filtering on extension '{path.uri}' is not supported")
    key = name.lower()
    if path.sub_attr is not None:
        key = f"{key}.{str(path.sub_attr.value).lower()}"
    return f"{namespace}.{key}" if namespace else key


def _compare(attr: Attr, op: str, raw: Any) -> ColumnElement[bool]:
    column = attr.column
    if op == "pr":
        present = column.is_not(None)
        return and_(present, column != "") if attr.kind in ("text", "key") else present
    value = _coerce(attr.kind, raw)
    if value is None:
        if op in ("eq", "ne"):
            return column.is_(None) if op == "eq" else column.is_not(None)
        raise InvalidFilter(f"'{op}' needs a value")
    left: Any = func.lower(column) if attr.kind == "text" else column
    if attr.kind in ("text", "key"):
        value = str(value).lower()  # RFC 7643 §2.3.1: caseExact false
    if op == "eq":
        return left == value  # type: ignore[no-any-return]
    if op == "ne":
        return or_(left != value, column.is_(None))
    if op in ("co", "sw", "ew"):
        if attr.kind not in ("text", "key", "exact"):
            raise InvalidFilter(f"'{op}' applies to strings only")
        method = {"co": left.contains, "sw": left.startswith, "ew": left.endswith}[op]
        return method(str(value), autoescape=True)  # type: ignore[no-any-return]
    if op in ("gt", "ge", "lt", "le"):
        if attr.kind == "bool":
            raise InvalidFilter(f"'{op}' does not apply to booleans")
        compare = {"gt": left > value, "ge": left >= value, "lt": left < value, "le": left <= value}
        return compare[op]  # type: ignore[no-any-return]
    raise InvalidFilter(f"unknown operator '{op}'")


def _coerce(kind: Kind, raw: Any) -> Any:
    if raw is None or (isinstance(raw, str) and raw.lower() == "null"):
        return None
    if kind == "bool":
        text = str(raw).lower()
        if text not in ("true", "false"):
            raise InvalidFilter(f"'{raw}' is not a boolean")
        return true() if text == "true" else false()
    if kind == "datetime":
        try:
            parsed = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidFilter(f"'{raw}' is not a date-time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return str(raw)
