"""The validation core on its own (``idp_sync.sso.saml``): no database, no HTTP."""

from __future__ import annotations

import datetime as dt

import pytest

from idp_sync.sso import saml
from sso.saml_idp import TestIdp, encode

ACS = "https://sp.test/sso/saml/conn_1/acs"
SP = "https://sp.test/sso/saml/conn_1/metadata"


@pytest.fixture(scope="module")
def idp() -> TestIdp:
    return TestIdp()


def _sp(idp: TestIdp, **kwargs: object) -> saml.SpConfig:
    return saml.SpConfig(
        sp_entity_id=SP,
        acs_url=ACS,
        idp_entity_id=idp.entity_id,
        idp_sso_url=idp.sso_url,
        certs=(idp.cert,),
        **kwargs,  # type: ignore[arg-type]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_valid_response_yields_signed_values(idp: TestIdp) -> None:
    response = idp.response(acs_url=ACS, audience=SP, groups=["a", "b"], in_response_to="req_1")
    result = saml.validate(response, _sp(idp), _now())
    assert result.name_id == "ada@example.com"
    assert result.attributes["groups"] == ["a", "b"]
    assert result.in_response_to == "req_1"
    assert result.not_on_or_after > _now()


def test_signed_response_enclosing_one_unsigned_assertion_is_enough(idp: TestIdp) -> None:
    response = idp.response(acs_url=ACS, audience=SP, sign_assertion=False, sign_response=True)
    assert saml.validate(response, _sp(idp), _now()).name_id == "ada@example.com"


def test_second_certificate_during_rotation_is_accepted(idp: TestIdp) -> None:
    new = TestIdp(entity_id=idp.entity_id)
    response = new.response(acs_url=ACS, audience=SP)
    sp = _sp(idp)
    with pytest.raises(saml.SamlRefusal):
        saml.validate(response, sp, _now())
    rotated = saml.SpConfig(**{**sp.__dict__, "certs": (idp.cert, new.cert)})
    assert saml.validate(response, rotated, _now()).name_id == "ada@example.com"


def test_wrong_issuer_is_refused(idp: TestIdp) -> None:
    other = TestIdp(entity_id="https://other-idp.test", key=idp.key, cert=idp.cert)
    with pytest.raises(saml.SamlRefusal) as refused:
        saml.validate(other.response(acs_url=ACS, audience=SP), _sp(idp), _now())
    assert refused.value.reason == "wrong_issuer"


def test_connection_without_certificates_refuses_everything(idp: TestIdp) -> None:
    sp = saml.SpConfig(**{**_sp(idp).__dict__, "certs": ()})
    with pytest.raises(saml.SamlRefusal) as refused:
        saml.validate(idp.response(acs_url=ACS, audience=SP), sp, _now())
    assert refused.value.reason == "connection_not_configured"


def test_encrypted_assertions_are_refused(idp: TestIdp) -> None:
    xml = idp.response_xml(
        '<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/'
        'xmlenc#"/></saml:EncryptedAssertion>',
        destination=ACS,
        in_response_to=None,
    )
    with pytest.raises(saml.SamlRefusal) as refused:
        saml.validate(encode(xml), _sp(idp), _now())
    assert refused.value.reason == "encrypted_assertion_unsupported"
