"""HTTP of the SSO flow: ``/sso/authorize``, the ACS, SP metadata, ``/sso/token`` and
``/sso/profile``. Not API-key routes: ``SsoRoute`` gives each request one session and one
transaction, and turns a ``SamlRefusal`` into a 4xx with its reason code after rolling
everything back, then records only ``authentication.sso_failed`` (and the counter).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from idp_sync.api.routing import commit_and_close, rollback_and_close, session_of
from idp_sync.api.threads import finishing
from idp_sync.errors import BadRequest, Unauthorized
from idp_sync.events.services import record_event
from idp_sync.metrics import SAML_SIGNIN_PATHS, SAML_SIGNINS
from idp_sync.runtime import Runtime
from idp_sync.sso import acs_async, flow, services
from idp_sync.sso import serializers as ser
from idp_sync.sso.models import Connection
from idp_sync.sso.saml import SamlRefusal

log = logging.getLogger(__name__)


class SsoRoute(APIRoute):
    """One transaction per request, committed before the response leaves."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            runtime: Runtime = request.app.state.runtime
            session = runtime.session()
            request.state.session = session
            try:
                response = await handler(request)
            except SamlRefusal as refusal:
                await finishing(request, rollback_and_close, session)
                await run_in_threadpool(_record_refusal, runtime, request, refusal)
                body = {"code": refusal.reason, "message": "the SAML response was refused"}
                return JSONResponse(body, status_code=refusal.status_code)
            except BaseException:
                await finishing(request, rollback_and_close, session)
                raise
            if session.in_transaction():
                # One hop to a thread for both: each costs a thread switch per request.
                await finishing(request, commit_and_close, session)
            else:  # the ACS: its transaction is its own, and over
                session.close()
            return response

        return route


def _record_refusal(runtime: Runtime, request: Request, refusal: SamlRefusal) -> None:
    """Nothing of the refused sign-in is kept: only the failure event, in its own transaction."""
    SAML_SIGNINS.labels("refused", refusal.reason).inc()
    connection_id = request.path_params.get("connection_id")
    log.warning(
        "saml response refused",
        extra={
            "reason": refusal.reason,
            "detail": refusal.detail,
            "connection_id": connection_id,
        },
    )
    with runtime.transaction() as session:
        connection = session.get(Connection, connection_id) if connection_id else None
        organization_id = connection.organization_id if connection is not None else None
        data = ser.sso_event(
            status="failed",
            organization_id=organization_id,
            connection_id=connection.id if connection is not None else None,
            ip_address=_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        data["error"] = {"code": refusal.reason, "message": "the SAML response was refused"}
        record_event(session, "authentication.sso_failed", data, organization_id=organization_id)


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


router = APIRouter(route_class=SsoRoute, tags=["sso"])
SessionDep = Annotated[Session, Depends(session_of)]


@router.get("/sso/authorize")
def authorize(
    request: Request,
    session: SessionDep,
    redirect_uri: str | None = None,
    client_id: str | None = None,
    response_type: str | None = None,
    state: str | None = None,
    connection: str | None = None,
    organization: str | None = None,
    prompt: str | None = None,
) -> RedirectResponse:
    """302 to the IdP with an AuthnRequest (HTTP-Redirect binding)."""
    url = flow.authorize(
        session,
        request.app.state.runtime.settings,
        client_id=client_id,
        redirect_uri=redirect_uri,
        response_type=response_type,
        state=state,
        connection=connection,
        organization=organization,
        force_authn=prompt == "login",
    )
    return RedirectResponse(url, status_code=302)


@router.post("/sso/saml/{connection_id}/acs")
async def acs(connection_id: str, request: Request) -> Response:
    """The Assertion Consumer Service (HTTP-POST binding, SAML bindings §3.5). The sign-in
    runs in one transaction of its own (``flow.accept``), committed in the same thread."""
    runtime: Runtime = request.app.state.runtime
    body = await request.body()
    if len(body) > (runtime.settings.saml_max_response_bytes * 4) // 3 * 3 + 8192:
        raise SamlRefusal("response_too_large", 413)  # url-encoded base64
    form = parse_qs(body.decode("latin-1"), max_num_fields=10)
    posted = (form.get("SAMLResponse") or [""])[0]
    if not posted:
        raise SamlRefusal("missing_saml_response")
    # The common sign-in runs on the event loop (acs_async); anything else in a thread.
    accepted = await acs_async.accept(
        runtime,
        connection_id,
        posted,
        ip_address=_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    if accepted is not None:
        SAML_SIGNINS.labels("accepted", "").inc()
        SAML_SIGNIN_PATHS.labels("event_loop").inc()
        return RedirectResponse(accepted.redirect_url, status_code=302)
    state = request.app.state
    limiter = getattr(state, "acs_limiter", None)
    if limiter is None:
        limiter = state.acs_limiter = anyio.CapacityLimiter(runtime.settings.acs_threads)
    # Its own threads, a few: the transaction begins and ends in the thread, so a sign-in
    # never holds a lock while it waits for one of them.
    accept = functools.partial(
        flow.accept,
        runtime,
        connection_id,
        posted,
        ip_address=_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    accepted = await anyio.to_thread.run_sync(accept, limiter=limiter)
    SAML_SIGNINS.labels("accepted", "").inc()
    SAML_SIGNIN_PATHS.labels("thread").inc()
    return RedirectResponse(accepted.redirect_url, status_code=302)


@router.get("/sso/saml/{connection_id}/metadata")
def metadata(connection_id: str, session: SessionDep) -> Response:
    """SP metadata (SAML metadata §2.4.4) for the IdP administrator."""
    c = services.get_connection(session, connection_id)
    xml = (
        '<?xml version="1.0"?>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'entityID="{flow._attr(c.sp_entity_id)}">'
        '<md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
        "</md:NameIDFormat>"
        '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        f'Location="{flow._attr(c.acs_url)}" index="0" isDefault="true"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )
    return Response(xml, media_type="application/samlmetadata+xml")


async def _fields(request: Request) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > 16384:
        raise BadRequest("request too large")
    if request.headers.get("content-type", "").startswith("application/json"):
        import json

        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise BadRequest("the request body is not valid JSON") from None
        return (
            {k: str(v) for k, v in data.items() if v is not None} if isinstance(data, dict) else {}
        )
    return {k: v[0] for k, v in parse_qs(raw.decode("latin-1")).items()}


@router.post("/sso/token")
async def token(request: Request, session: SessionDep) -> JSONResponse:
    """The code (one use) for an access token and the profile; the secret is an API key."""
    fields = await _fields(request)
    if fields.get("grant_type") != "authorization_code":
        raise BadRequest("grant_type must be authorization_code", code="unsupported_grant_type")
    secret = fields.get("client_secret", "")
    verifier = request.app.state.api_keys
    if not secret or (
        verifier.cached(secret) is None
        and await run_in_threadpool(verifier.verify, session, secret) is None
    ):
        raise Unauthorized("invalid client_secret", code="invalid_client")
    settings = request.app.state.runtime.settings
    body = await run_in_threadpool(
        flow.exchange, session, settings, client_id=fields.get("client_id"), code=fields.get("code")
    )
    return JSONResponse(body)


@router.get("/sso/profile")
def profile(request: Request, session: SessionDep) -> JSONResponse:
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("missing bearer access token")
    return JSONResponse(flow.profile_for(session, raw.strip()))
