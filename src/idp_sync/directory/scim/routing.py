"""The unit of work of a SCIM request: the directory's bearer token, one transaction, and
errors rendered as SCIM error bodies (RFC 7644 §3.12), never a 500 for client input.

A token opens only its own directory: a valid token used on another directory's URL
answers 404, as an unknown id would (DESIGN §7). Tokens are never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from idp_sync.api.routing import event_loop_first_route
from idp_sync.api.threads import finishing
from idp_sync.directory.models import Directory
from idp_sync.directory.scim.adapters import adapter_for
from idp_sync.directory.scim.errors import (
    InvalidSyntax,
    InvalidValue,
    ScimError,
    ScimNotFound,
    ScimUnauthorized,
    Uniqueness,
)
from idp_sync.directory.services import directory_for_token
from idp_sync.errors import IdpSyncError
from idp_sync.metrics import SCIM_REQUESTS
from idp_sync.runtime import Runtime

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/scim+json"
MAX_BODY_BYTES = 10 * 1024 * 1024  # a 50,000-member PATCH is about 3 MB


class KnownDirectory(NamedTuple):
    type: str
    organization_id: str


# Each directory's type and organization (immutable: no API changes them), as the unit of
# work saw them when it authenticated a request: an event-loop path picks the IdP
# adapter by the type before its statement, which checks the token itself (and the
# organization). Ids are never reused, so a stale entry cannot mislead.
KNOWN_DIRECTORIES: dict[str, KnownDirectory] = {}
_KNOWN_MAX = 100_000


class ScimRoute(APIRoute):
    """Every SCIM route: directory bearer token, request in one transaction, SCIM errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # Event-loop paths check the bearer token inside their statement: nothing before.
        return event_loop_first_route(self, self._unit_of_work(super().get_route_handler()))

    def _unit_of_work(
        self, handler: Callable[[Request], Coroutine[Any, Any, Response]]
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def route(request: Request) -> Response:
            runtime: Runtime = request.app.state.runtime
            session = runtime.session()
            request.state.session = session
            try:
                request.state.directory = await run_in_threadpool(_authenticate, request, session)
                request.state.scim_body = await _body(request)
                response = await handler(request)
                await finishing(request, session.commit)
                _count(request, response.status_code)
                return response
            except Exception as exc:
                await finishing(request, session.rollback)
                error = _as_scim_error(exc)
                if error is None:
                    _count(request, 500)
                    raise
                answer = scim_error(error)
                _count(request, answer.status_code)
                return answer
            finally:
                await finishing(request, session.close)

        return route


def _count(request: Request, status: int) -> None:
    directory = getattr(request.state, "directory", None)
    kind = directory.type if directory is not None else "unknown"
    SCIM_REQUESTS.labels(kind, request.method, str(status)).inc()


def _authenticate(request: Request, session: Session) -> Directory:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ScimUnauthorized("missing bearer token")
    directory = directory_for_token(session, token.strip())
    if directory is None:
        raise ScimUnauthorized("invalid bearer token")
    if directory.id != request.path_params.get("directory_id"):
        raise ScimNotFound("directory not found")
    if directory.id not in KNOWN_DIRECTORIES:
        if len(KNOWN_DIRECTORIES) >= _KNOWN_MAX:
            KNOWN_DIRECTORIES.clear()
        KNOWN_DIRECTORIES[directory.id] = KnownDirectory(directory.type, directory.organization_id)
    return directory


async def _body(request: Request) -> Any:
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    raw = await request.body()
    if not raw.strip():
        return None  # handlers that need a body say so (InvalidSyntax)
    directory: Directory = request.state.directory
    return _decoded(raw, directory.type)


def normalised_body(raw: bytes, directory_type: str) -> dict[str, Any] | None:
    """For an event-loop path: the JSON object of ``raw`` as ``_body`` gives it to a
    handler, or None where ``_body`` would refuse it (the unit of work then answers with
    its error)."""
    try:
        return _decoded(raw, directory_type)
    except ScimError:
        return None


def _decoded(raw: bytes, directory_type: str) -> dict[str, Any]:
    """The JSON object of a request body, normalised by the directory's IdP adapter."""
    if len(raw) > MAX_BODY_BYTES:
        raise ScimError("the request body is too large", status=413)
    try:
        body = _parse(raw)
    except ValueError:
        raise InvalidSyntax("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidSyntax("the request body must be a JSON object")
    normalised: dict[str, Any] = adapter_for(directory_type).normalise(body, fresh=True)
    return normalised


def _parse(raw: bytes) -> Any:
    """orjson (a 5,000-member PATCH parses in a sixth of the time), or the standard
    library for what orjson refuses and it reads (``NaN``)."""
    try:
        return _orjson_loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _orjson_loads(raw: bytes) -> Any:
    """``orjson.loads``, exact: orjson reads an integer beyond 64 bits as a float, so a body
    holding a float that large is read again by the standard library (which keeps such
    integers, and gives the same floats)."""
    body = orjson.loads(raw)
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, float) and not -_EXACT < value < _EXACT:
            return json.loads(raw)
    return body


_EXACT = float(2**64)


def _as_scim_error(exc: Exception) -> ScimError | None:
    if isinstance(exc, ScimError):
        return exc
    if isinstance(exc, IntegrityError):  # a concurrent create of the same name won
        return Uniqueness("a concurrent request created a conflicting resource")
    if isinstance(exc, DataError):
        return InvalidValue("a value cannot be stored (invalid characters or length)")
    if isinstance(exc, RequestValidationError):
        return InvalidValue("invalid request parameters")
    if isinstance(exc, IdpSyncError):
        return ScimError(exc.message, status=exc.status_code)
    return None


def scim_error(error: ScimError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if error.status_code == 401 else None
    return JSONResponse(
        error.body(), status_code=error.status_code, media_type=MEDIA_TYPE, headers=headers
    )


class _ScimJSONResponse(JSONResponse):
    """Rendered by orjson: compact UTF-8 as ``JSONResponse`` writes it, several times
    faster (a User resource on every POST, a page of 100 on a list)."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits that an IdP sent
            return super().render(content)


def scim_response(body: Any, status_code: int = 200, location: str | None = None) -> JSONResponse:
    headers = {"Location": location} if location else None
    return _ScimJSONResponse(body, status_code=status_code, media_type=MEDIA_TYPE, headers=headers)
