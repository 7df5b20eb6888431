"""Helpers for the wire format WorkOS clients expect: ``Z`` datetimes and list pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from idp_sync.errors import Unprocessable

Order = Literal["asc", "desc", "normal"]


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with millisecond precision and ``Z``, as WorkOS writes datetimes."""
    if value is None:
        return None
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_sql(column: str) -> str:
    """``iso`` in PostgreSQL, for statements that render objects themselves: UTC,
    milliseconds (truncated, as ``iso`` does), ``Z``. Colons escaped for ``text()``."""
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\\:MI\\:SS.MS\"Z\"')"


@dataclass(frozen=True)
class PageParams:
    limit: int = 10
    before: str | None = None
    after: str | None = None
    order: Order = "desc"

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 100:
            raise Unprocessable(
                "limit must be between 1 and 100",
                errors=[{"code": "invalid_limit", "field": "limit"}],
            )
        if self.order not in ("asc", "desc", "normal"):
            raise Unprocessable(
                "order must be one of asc, desc, normal",
                errors=[{"code": "invalid_order", "field": "order"}],
            )
        if self.before and self.after:
            raise Unprocessable("give either before or after, not both")


def paginate(
    session: Session,
    query: Select[Any],
    id_column: InstrumentedAttribute[Any],
    page: PageParams,
    *,
    cursor_value: Callable[[str], Any] | None = None,
) -> tuple[Sequence[Any], dict[str, str | None]]:
    """Cursor pagination by prefixed, time-sortable id (or another unique sort column,
    with ``cursor_value`` turning a client's cursor, always an object id, into its value).

    ``after`` moves forward in the requested order, ``before`` moves backward; the
    metadata gives the cursors of the neighbouring pages (``None`` at either end).
    """
    if page.order == "normal":
        # Newest first, but ``before`` fetches older records and ``after`` newer ones.
        swapped = PageParams(limit=page.limit, before=page.after, after=page.before, order="desc")
        rows, meta = paginate(session, query, id_column, swapped, cursor_value=cursor_value)
        return rows, {"before": meta["after"], "after": meta["before"]}
    descending = page.order == "desc"
    backward = page.before is not None
    cursor = page.before if backward else page.after
    walk_descending = descending != backward
    if cursor is not None:
        key = cursor_value(cursor) if cursor_value is not None else cursor
        query = query.where(id_column < key if walk_descending else id_column > key)
    query = query.order_by(id_column.desc() if walk_descending else id_column.asc())
    rows = list(session.scalars(query.limit(page.limit + 1)).unique())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    if backward:
        rows.reverse()
    first, last = (rows[0].id, rows[-1].id) if rows else (None, None)
    if backward:
        meta = {"before": first if more else None, "after": last}
    else:
        meta = {"before": first if cursor is not None else None, "after": last if more else None}
    return rows, meta


def list_body(data: list[dict[str, Any]], meta: dict[str, str | None]) -> dict[str, Any]:
    return {"object": "list", "data": data, "list_metadata": meta}
