"""The unit of work of an HTTP request: authentication, one session, one transaction,
``Idempotency-Key`` handling, and commit before the response leaves.

Handlers parse, call a service, render; they never commit. Work enqueued by services is
published by the session's after-commit hook, so nothing is sent for a rolled-back change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from idp_sync.auth.idempotency import IdempotencyGuard
from idp_sync.errors import Conflict, Unauthorized
from idp_sync.runtime import Runtime


class UnitOfWorkRoute(APIRoute):
    """Every management API route: bearer API key required, request in one transaction."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            runtime: Runtime = request.app.state.runtime
            session = runtime.session()
            request.state.session = session
            try:
                request.state.api_key_id = await _authenticate(request, session)
                guard = await _guard(request)
                ttl = runtime.settings.idempotency_ttl_hours
                if guard is not None:
                    stored = await run_in_threadpool(guard.lookup, session, ttl)
                    if stored is not None:
                        return JSONResponse(stored[1], status_code=stored[0])
                response = await handler(request)
                if guard is not None and 200 <= response.status_code < 300:
                    guard.store(session, response.status_code, _json_body(response))
                await run_in_threadpool(_commit_and_close, session)
                return response
            except IntegrityError:
                await run_in_threadpool(session.rollback)
                # A concurrent request won: with the same Idempotency-Key, answer as it did.
                if guard is not None:
                    stored = await run_in_threadpool(guard.lookup, session, ttl)
                    if stored is not None:
                        return JSONResponse(stored[1], status_code=stored[0])
                raise Conflict("a concurrent change conflicted with this request; retry") from None
            except BaseException:
                await run_in_threadpool(session.rollback)
                raise
            finally:
                await run_in_threadpool(session.close)

        return route


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    finally:
        session.close()


async def _authenticate(request: Request, session: Session) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer API key", code="unauthorized")
    verifier = request.app.state.api_keys
    key_id = verifier.cached(token.strip())
    if key_id is None:
        key_id = await run_in_threadpool(verifier.verify, session, token.strip())
    if key_id is None:
        raise Unauthorized("invalid API key", code="unauthorized")
    return str(key_id)


async def _guard(request: Request) -> IdempotencyGuard | None:
    client_key = request.headers.get("idempotency-key")
    if request.method != "POST" or not client_key:
        return None
    body = await request.body()
    return IdempotencyGuard.build(
        client_key, request.headers.get("authorization", ""), request.method, request.url.path, body
    )


def _json_body(response: Response) -> Any:
    try:
        return json.loads(bytes(response.body))
    except ValueError:
        return None


def respond(body: Any, status_code: int = 200) -> JSONResponse:
    """A JSON response for an already-serialised body (skips FastAPI's re-encoding)."""
    return JSONResponse(body, status_code=status_code)


async def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session
