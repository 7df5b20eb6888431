"""Request-scoped values that follow work from HTTP into tasks (correlation id)."""

from __future__ import annotations

import contextvars
import uuid

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str:
    """The current id, or a new one (work started outside any request, e.g. by beat)."""
    value = correlation_id.get()
    if value is None:
        value = new_correlation_id()
        correlation_id.set(value)
    return value
