"""The unit of work of an HTTP request: authentication, one session, one transaction,
``Idempotency-Key`` handling, and commit before the response leaves.

Handlers parse, call a service, render; they never commit. Work enqueued by services is
published by the session's after-commit hook, so nothing is sent for a rolled-back change.

Hot reads are the exception: an ``async def`` endpoint marked ``@read_only`` gets no
session and no transaction; it runs one statement on the runtime's ``Reader`` (an async
PostgreSQL pool), and its API key is checked on the event loop too, so the request never
waits for the threadpool.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from idp_sync.api.threads import finishing
from idp_sync.auth.idempotency import IdempotencyGuard
from idp_sync.auth.services import ApiKeyVerifier
from idp_sync.errors import Conflict, Unauthorized
from idp_sync.metrics import API_PATHS
from idp_sync.runtime import PostgresReader, Reader, Runtime

Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Any]])
AnyEndpoint = TypeVar("AnyEndpoint", bound=Callable[..., Any])
_READ_ONLY = "__idp_sync_read_only__"
_EVENT_LOOP_FIRST = "__idp_sync_event_loop_first__"
# The common case of a hot request, on the event loop: its response, or None for the
# unit of work to answer (having written nothing). Raises only what the unit of work would.
EventLoopPath = Callable[[Request, Runtime, PostgresReader], Awaitable[Response | None]]
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def read_only(endpoint: Endpoint) -> Endpoint:
    """Mark an ``async def`` endpoint that only reads through ``ReaderDep``: its route
    opens no session and no transaction (see the module docstring). Goes below the
    ``@router.get`` line, so the mark is there when the route is built; such an endpoint
    has no ``SessionDep``."""
    setattr(endpoint, _READ_ONLY, True)
    return endpoint


def event_loop_first(path: EventLoopPath) -> Callable[[AnyEndpoint], AnyEndpoint]:
    """Try ``path`` before the endpoint, on PostgreSQL: a request whose common case runs
    on the event loop on the async pool (no session, no thread), and whose every other
    case (``path`` answers None, having written nothing) runs as the endpoint, in the unit
    of work. Goes below the ``@router.<method>`` line; ``UnitOfWorkRoute`` and
    ``ScimRoute`` honour it (``event_loop_first_route``). ``idp_sync_api_paths_total``
    counts which way each request went."""

    def mark(endpoint: AnyEndpoint) -> AnyEndpoint:
        setattr(endpoint, _EVENT_LOOP_FIRST, path)
        return endpoint

    return mark


class UnitOfWorkRoute(APIRoute):
    """Every management API route: bearer API key required, request in one transaction."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if getattr(self.endpoint, _READ_ONLY, False):
            return _read_only_route(handler)
        unit_of_work = self._unit_of_work(handler)
        return event_loop_first_route(self, unit_of_work, _authenticate_on_loop)

    def _unit_of_work(
        self, handler: Callable[[Request], Coroutine[Any, Any, Response]]
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:

        async def route(request: Request) -> Response:
            runtime: Runtime = request.app.state.runtime
            session = runtime.session()
            request.state.session = session
            closed = False  # each threadpool hop costs: commit and close share one
            try:
                request.state.api_key_id = await _authenticate(
                    request,
                    lambda verifier, token: run_in_threadpool(verifier.verify, session, token),
                )
                guard = await idempotency_guard(request)
                ttl = runtime.settings.idempotency_ttl_hours
                if guard is not None:
                    stored = await run_in_threadpool(guard.claim, session, ttl)
                    if stored is not None:
                        return JSONResponse(stored[1], status_code=stored[0])
                response = await handler(request)
                await finishing(request, _commit_and_close, session, guard, response)
                closed = True
                return response
            except IntegrityError:
                await finishing(request, session.rollback)
                # A concurrent request won: with the same Idempotency-Key, answer as it did.
                if guard is not None:
                    stored = await run_in_threadpool(guard.lookup, session, ttl)
                    if stored is not None:
                        return JSONResponse(stored[1], status_code=stored[0])
                raise Conflict("a concurrent change conflicted with this request; retry") from None
            except BaseException:
                await finishing(request, rollback_and_close, session)
                closed = True
                raise
            finally:
                if not closed:
                    await finishing(request, session.close)

        return route


def event_loop_first_route(
    route: APIRoute,
    unit_of_work: Handler,
    before: Callable[[Request, PostgresReader], Awaitable[None]] | None = None,
) -> Handler:
    """``unit_of_work``, or, for an endpoint marked ``event_loop_first``, its path tried
    first on PostgreSQL (after ``before``, e.g. the API key check), counted either way."""
    path: EventLoopPath | None = getattr(route.endpoint, _EVENT_LOOP_FIRST, None)
    if path is None:
        return unit_of_work
    route_name = f"{','.join(sorted(route.methods or ()))} {route.path_format}"
    event_loop = API_PATHS.labels(route_name, "event_loop")
    thread = API_PATHS.labels(route_name, "unit_of_work")

    async def first(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        reader = runtime.reader()
        if isinstance(reader, PostgresReader):
            if before is not None:
                await before(request, reader)
            response = await path(request, runtime, reader)
            if response is not None:
                event_loop.inc()
                return response
        thread.inc()
        return await unit_of_work(request)

    return first


async def _authenticate_on_loop(request: Request, reader: PostgresReader) -> None:
    request.state.api_key_id = await _authenticate(
        request, lambda verifier, token: verifier.verify_async(reader, token)
    )


def _commit_and_close(session: Session, guard: IdempotencyGuard | None, response: Response) -> None:
    """Record the answer under the claimed Idempotency-Key (a 2xx) or give the key up,
    then commit: one threadpool hop."""
    try:
        if guard is not None and 200 <= response.status_code < 300:
            guard.store(session, response.status_code, _json_body(response))
        elif guard is not None:
            guard.release(session)
        session.commit()
    finally:
        session.close()


def commit_and_close(session: Session) -> None:
    try:
        session.commit()
    finally:
        session.close()


def rollback_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


def _read_only_route(
    handler: Callable[[Request], Coroutine[Any, Any, Response]],
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def route(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        request.state.api_key_id = await _authenticate(
            request, lambda verifier, token: verifier.verify_async(runtime.reader(), token)
        )
        return await handler(request)

    return route


Verify = Callable[[ApiKeyVerifier, str], Awaitable[str | None]]


async def _authenticate(request: Request, verify: Verify) -> str:
    """The API key's id. A key verified in the last ``api_key_cache_seconds`` is answered
    from memory, on the event loop; otherwise ``verify`` looks it up."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer API key", code="unauthorized")
    verifier: ApiKeyVerifier = request.app.state.api_keys
    key_id = verifier.cached(token.strip())
    if key_id is None:
        key_id = await verify(verifier, token.strip())
    if key_id is None:
        raise Unauthorized("invalid API key", code="unauthorized")
    return str(key_id)


async def idempotency_guard(request: Request) -> IdempotencyGuard | None:
    """The request's ``Idempotency-Key`` guard (POST with the header), else None."""
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


async def reader_of(request: Request) -> Reader:
    runtime: Runtime = request.app.state.runtime
    return runtime.reader()
