"""SSO fixtures: an API whose public URL is its real address (so ACS URL, Destination and
Recipient are the ones the test IdP posts to), with the SDK's client id and a registered
redirect URI; a worker for it; an organization with a connection trusting a test IdP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import API_KEY, LiveServer, free_port, make_settings, serve, unique
from idp_sync.runtime import Runtime
from sso.saml_idp import TestIdp
from sso.sso_helpers import REDIRECT_URI, Setup, create_connection


@pytest.fixture(scope="session")
def sso_live(
    pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    port = free_port()
    settings = make_settings(
        pg_url,
        redis_url,
        str(tmp_path_factory.mktemp("sso")),
        IDP_SYNC_PUBLIC_URL=f"http://127.0.0.1:{port}",
        IDP_SYNC_CLIENT_ID="client_test",
        IDP_SYNC_REDIRECT_URIS=f"{REDIRECT_URI},https://app.test/other",
    )
    runtime = Runtime(settings)
    server = serve(runtime, port)
    yield server
    server.stop()
    runtime.dispose()


@pytest.fixture
def sso_worker(sso_live: LiveServer) -> Iterator[object]:
    from idp_sync.embedded import worker_and_beat

    assert sso_live.runtime.celery is not None
    with worker_and_beat(sso_live.runtime.celery, beat=False) as running:
        yield running


@pytest.fixture
def sso_sdk(sso_live: LiveServer):  # type: ignore[no-untyped-def]
    from workos import WorkOSClient

    return WorkOSClient(
        api_key=API_KEY, client_id="client_test", base_url=sso_live.url, max_retries=0
    )


@pytest.fixture
def http(sso_live: LiveServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=sso_live.url, headers=headers, timeout=20) as client:
        yield client


@pytest.fixture
def setup(sso_sdk: Any, http: httpx.Client) -> Setup:
    """An organization with an active connection trusting a fresh test IdP."""
    idp = TestIdp()
    org = sso_sdk.organizations.create_organization(name=unique("Sso"))
    connection = create_connection(sso_sdk, idp, org.id)
    saml = http.get(f"/connections/{connection.id}").json()["saml"]
    return Setup(idp, org.id, connection.id, saml["acs_url"], saml["sp_entity_id"])
