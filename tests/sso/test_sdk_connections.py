"""SAML connections through the official ``workos`` SDK (issue 5 point 1)."""

from __future__ import annotations

import pytest
from lxml import etree
from workos.sso import PatchProtocolOptionsSAML
from workos.sso.models import CreateConnectionAttributeMaps, PatchConnectionSAMLOptions
from workos.sso.models.create_connection_standard_attributes import (
    CreateConnectionStandardAttributes,
)

from conftest import unique
from sso.saml_idp import TestIdp, make_key_and_cert
from sso.sso_helpers import (
    Setup,
    create_connection,
)


def test_create_connection_with_saml_options_is_active_and_emits_activated(
    sso_sdk, engine, http
) -> None:
    idp = TestIdp()
    org = sso_sdk.organizations.create_organization(name=unique("Conn"))
    maps = CreateConnectionAttributeMaps(
        standard_attributes=CreateConnectionStandardAttributes(groups="memberOf")
    )
    connection = create_connection(sso_sdk, idp, org.id, attribute_maps=maps)
    assert connection.id.startswith("conn_")
    assert connection.organization_id == org.id
    assert connection.state == "active"
    assert connection.connection_type == "OktaSAML"
    raw = http.get(f"/connections/{connection.id}").json()
    assert raw["attribute_maps"]["standard_attributes"]["groups"] == "memberOf"
    assert (
        raw["saml"]["acs_url"] == f"{str(http.base_url).rstrip('/')}/sso/saml/{connection.id}/acs"
    )
    activated = [e["id"] for e in _connection_events(engine, "connection.activated")]
    assert activated.count(connection.id) == 1


def _connection_events(engine, name):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT data FROM events WHERE event = :n"), {"n": name})
        return [r[0] for r in rows]


def test_get_list_update_delete_connection(sso_sdk, setup: Setup, engine) -> None:
    got = sso_sdk.sso.get_connection(setup.connection_id)
    assert got.id == setup.connection_id
    listed = sso_sdk.sso.list_connections(organization_id=setup.org_id)
    assert [c.id for c in listed.data] == [setup.connection_id]
    updated = sso_sdk.sso.update_connection(
        setup.connection_id,
        name="Renamed",
        protocol_options=PatchProtocolOptionsSAML(
            saml_options=PatchConnectionSAMLOptions(idp_sso_url="https://idp.test/new-sso")
        ),
    )
    assert updated.name == "Renamed"
    sso_sdk.sso.delete_connection(setup.connection_id)
    from workos._errors import NotFoundError

    with pytest.raises(NotFoundError):
        sso_sdk.sso.get_connection(setup.connection_id)
    deleted = [e for e in _connection_events(engine, "connection.deleted")]
    assert setup.connection_id in [e["id"] for e in deleted]


def test_connection_without_certificate_is_draft_until_one_is_added(sso_sdk, engine) -> None:
    from workos.sso import CreateProtocolOptionsSAML
    from workos.sso.models import CreateConnectionSAMLOptions

    idp = TestIdp()
    org = sso_sdk.organizations.create_organization(name=unique("Draft"))
    connection = sso_sdk.sso.create_connection(
        organization_id=org.id,
        protocol_options=CreateProtocolOptionsSAML(
            saml_options=CreateConnectionSAMLOptions(
                idp_entity_id=idp.entity_id, idp_sso_url=idp.sso_url
            )
        ),
    )
    assert connection.state == "draft"
    sso_sdk.sso.create_connection_saml_idp_signing_cert(connection.id, value=idp.cert)
    assert sso_sdk.sso.get_connection(connection.id).state == "active"
    activated = [e["id"] for e in _connection_events(engine, "connection.activated")]
    assert activated.count(connection.id) == 1


def test_certificates_can_be_rotated(sso_sdk, setup: Setup) -> None:
    _, new_cert = make_key_and_cert("rotated")
    added = sso_sdk.sso.create_connection_saml_idp_signing_cert(setup.connection_id, value=new_cert)
    assert added.id.startswith("cert_") and added.not_after is not None
    certs = sso_sdk.sso.list_connection_saml_idp_signing_certs(setup.connection_id).data
    assert len(certs) == 2
    old = next(c for c in certs if c.id != added.id)
    sso_sdk.sso.delete_connection_saml_idp_signing_cert(setup.connection_id, old.id)
    remaining = sso_sdk.sso.list_connection_saml_idp_signing_certs(setup.connection_id).data
    assert [c.id for c in remaining] == [added.id]


def test_last_certificate_cannot_be_removed(sso_sdk, setup: Setup) -> None:
    from workos._errors import BadRequestError

    (only,) = sso_sdk.sso.list_connection_saml_idp_signing_certs(setup.connection_id).data
    with pytest.raises(BadRequestError):
        sso_sdk.sso.delete_connection_saml_idp_signing_cert(setup.connection_id, only.id)


def test_invalid_certificate_is_unprocessable(sso_sdk, setup: Setup) -> None:
    from workos._errors import UnprocessableEntityError

    with pytest.raises(UnprocessableEntityError):
        sso_sdk.sso.create_connection_saml_idp_signing_cert(setup.connection_id, value="nope")


def test_deactivate_and_activate_emit_events(http, setup: Setup, engine) -> None:
    assert http.post(f"/connections/{setup.connection_id}/deactivate").json()["state"] == "inactive"
    assert http.post(f"/connections/{setup.connection_id}/activate").json()["state"] == "active"
    deactivated = [e["id"] for e in _connection_events(engine, "connection.deactivated")]
    assert setup.connection_id in deactivated


def test_sp_metadata_names_entity_id_and_acs(http, setup: Setup) -> None:
    response = http.get(f"/sso/saml/{setup.connection_id}/metadata", headers={"Authorization": ""})
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    assert root.get("entityID") == setup.sp_entity_id
    md = "{urn:oasis:names:tc:SAML:2.0:metadata}"
    acs = root.find(f"{md}SPSSODescriptor/{md}AssertionConsumerService")
    assert acs is not None and acs.get("Location") == setup.acs_url
