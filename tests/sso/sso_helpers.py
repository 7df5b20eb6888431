"""Helpers of the SSO tests: serving the API on a chosen port, connections, counting rows
and reading events (nothing else written), and walking the first leg of the flow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from workos.sso import CreateProtocolOptionsSAML
from workos.sso.models import CreateConnectionSAMLOptions

from conftest import unique
from sso.saml_idp import TestIdp

REDIRECT_URI = "https://app.test/callback"
COUNTED = (
    "sso_profiles",
    "sso_login_events",
    "sso_authorization_codes",
    "sso_access_tokens",
    "sso_assertion_replays",
    "outbox_messages",
    "users",
    "organization_memberships",
)


@dataclass
class Setup:
    idp: TestIdp
    org_id: str
    connection_id: str
    acs_url: str
    sp_entity_id: str


def create_connection(sdk: Any, idp: TestIdp, org_id: str, **kwargs: Any) -> Any:
    return sdk.sso.create_connection(
        organization_id=org_id,
        name=unique("Conn"),
        connection_type=kwargs.pop("connection_type", "OktaSAML"),
        protocol_options=CreateProtocolOptionsSAML(
            saml_options=CreateConnectionSAMLOptions(
                idp_entity_id=idp.entity_id, idp_sso_url=idp.sso_url, idp_signing_certs=[idp.cert]
            )
        ),
        **kwargs,
    )


def allow_idp_initiated(http: httpx.Client, connection_id: str, **flags: bool) -> None:
    body = {"saml_options": {"allow_idp_initiated": True, **flags}}
    response = http.patch(f"/connections/{connection_id}", json=body)
    assert response.status_code == 200, response.text


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}


def events_of(engine: sa.Engine, name: str, connection_id: str) -> list[dict[str, Any]]:
    query = sa.text(
        "SELECT data FROM events WHERE event = :name "
        "AND data->'sso'->>'connection_id' = :cid ORDER BY id"
    )
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(query, {"name": name, "cid": connection_id})]


def start_sign_in(http: httpx.Client, connection_id: str, state: str = "st-1") -> str:
    """``/sso/authorize`` -> the AuthnRequest id the IdP must answer (RelayState)."""
    from urllib.parse import parse_qs, urlsplit

    response = http.get(
        "/sso/authorize",
        params={
            "connection": connection_id,
            "redirect_uri": REDIRECT_URI,
            "client_id": "client_test",
            "response_type": "code",
            "state": state,
        },
        follow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["RelayState"][0]


def post_acs(http: httpx.Client, setup: Setup, saml_response: str) -> httpx.Response:
    return http.post(
        f"/sso/saml/{setup.connection_id}/acs",
        data={"SAMLResponse": saml_response},
        headers={"Authorization": ""},
        follow_redirects=False,
    )
