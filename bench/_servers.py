"""The baseline app of bench/bench_http.py: bare FastAPI, one tiny JSON endpoint each way.

Served by uvicorn in its own process (``uvicorn --app-dir bench _servers:bare_app``).
"""

from __future__ import annotations

from fastapi import FastAPI

bare_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@bare_app.get("/sync")
def sync_endpoint() -> dict[str, str]:
    """Like our endpoints: a plain ``def``, so Starlette runs it in the threadpool."""
    return {"object": "ping", "status": "ok"}


@bare_app.get("/async")
async def async_endpoint() -> dict[str, str]:
    return {"object": "ping", "status": "ok"}
