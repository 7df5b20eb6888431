"""The baseline app of bench/bench_http.py (one tiny JSON endpoint each way) and of
bench/scim.py (SCIM-sized endpoints that parse the body and answer, storing nothing).

Served by uvicorn in its own process (``uvicorn --app-dir bench _servers:bare_app``).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Response

bare_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@bare_app.get("/sync")
def sync_endpoint() -> dict[str, str]:
    """Like our endpoints: a plain ``def``, so Starlette runs it in the threadpool."""
    return {"object": "ping", "status": "ok"}


@bare_app.get("/async")
async def async_endpoint() -> dict[str, str]:
    return {"object": "ping", "status": "ok"}


# --- SCIM-sized endpoints, the floor of bench/scim.py -----------------------------------


def _user_resource(body: dict[str, Any], user_id: str) -> dict[str, Any]:
    return {
        **body,
        "id": user_id,
        "meta": {"resourceType": "User", "location": f"/scim/Users/{user_id}", "version": 'W/"1"'},
    }


@bare_app.post("/scim/Users", status_code=201)
def scim_create_user(body: dict[str, Any]) -> dict[str, Any]:
    """Parses the JSON body and echoes a resource: no storage, no validation."""
    return _user_resource(body, uuid.uuid4().hex)


@bare_app.get("/scim/Users")
def scim_list_users(filter: str = "") -> dict[str, Any]:
    user = {"userName": filter[-30:], "active": True}
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 1,
        "startIndex": 1,
        "itemsPerPage": 1,
        "Resources": [_user_resource(user, "0" * 32)],
    }


@bare_app.patch("/scim/Groups/{group_id}", status_code=204)
def scim_patch_group(group_id: str, body: dict[str, Any]) -> Response:
    return Response(status_code=204)
