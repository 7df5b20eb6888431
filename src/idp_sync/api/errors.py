"""Errors rendered in one place as WorkOS error bodies; never a traceback, never a 500
for something a client sent."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from idp_sync.errors import IdpSyncError

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 400: "bad_request"}


def install(app: FastAPI) -> None:
    app.add_exception_handler(IdpSyncError, _idp_sync_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, _data_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _idp_sync_error(_: Request, exc: IdpSyncError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        errors.append(
            {
                "code": err.get("type", "invalid"),
                "field": ".".join(loc),
                "message": err.get("msg", ""),
            }
        )
    if any(e["code"] == "json_invalid" for e in errors):
        return JSONResponse(
            {"code": "bad_request", "message": "the request body is not valid JSON"}, 400
        )
    message = (
        "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors) or "invalid request"
    )
    body = {"code": "invalid_request_parameters", "message": message, "errors": errors}
    return JSONResponse(body, status_code=422)


async def _data_error(_: Request, exc: DataError) -> JSONResponse:
    """A value the database cannot store (e.g. a NUL character): the client's input."""
    body = {
        "code": "invalid_request_parameters",
        "message": "a value in the request cannot be stored (invalid characters or length)",
    }
    return JSONResponse(body, status_code=422)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "error")
    return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return JSONResponse(
        {"code": "server_error", "message": "internal server error"}, status_code=500
    )
