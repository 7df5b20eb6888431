"""Threads that finish transactions (commit, rollback, close), apart from the endpoints'.

Sync endpoints run in the default threadpool (40 threads). If every one of those threads
is an endpoint waiting for a row lock, and the transaction holding that lock is waiting
for a free thread to commit in, nothing moves until a timeout. Commits, rollbacks and
closes therefore run on threads limited separately: a transaction that has done its work
can always finish and release its locks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import Request

T = TypeVar("T")
FINISHING_THREADS = 64


async def finishing(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on a finishing thread of this app (one limiter per app: its loop)."""
    state = request.app.state
    limiter = getattr(state, "finishing_limiter", None)
    if limiter is None:
        limiter = state.finishing_limiter = anyio.CapacityLimiter(FINISHING_THREADS)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=limiter)
