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


# --- the protocol schema, compiled once per thread -------------------------------------


def test_schema_invalid_response_is_still_refused(idp: TestIdp) -> None:
    """The compiled schema is the one python3-saml validates against: an element the SAML
    protocol schema does not allow after the assertion is refused as before."""
    assertion = idp.sign(
        idp.assertion_xml(
            acs_url=ACS, audience=SP, name_id="ada@example.com", attributes={}, in_response_to=None
        )
    )
    xml = idp.response_xml(
        assertion, destination=ACS, in_response_to=None, extra="<samlp:Unexpected/>"
    )
    with pytest.raises(saml.SamlRefusal) as refused:
        saml.validate(encode(xml), _sp(idp), _now())
    assert refused.value.reason == "schema_invalid"


def test_validation_from_several_threads_at_once(idp: TestIdp) -> None:
    """Each thread validates with its own compiled schema (lxml's schema objects share one
    error log): every good response passes and every schema-invalid one is refused."""
    from concurrent.futures import ThreadPoolExecutor

    good = [idp.response(acs_url=ACS, audience=SP, name_id=f"u{i}@example.com") for i in range(8)]
    assertion = idp.sign(
        idp.assertion_xml(
            acs_url=ACS, audience=SP, name_id="x@example.com", attributes={}, in_response_to=None
        )
    )
    bad = encode(
        idp.response_xml(
            assertion, destination=ACS, in_response_to=None, extra="<samlp:Unexpected/>"
        )
    )

    def check(response: str) -> str:
        try:
            return saml.validate(response, _sp(idp), _now()).name_id
        except saml.SamlRefusal as refusal:
            return refusal.reason

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(check, [*good, bad] * 4))
    expected = [f"u{i}@example.com" for i in range(8)] + ["schema_invalid"]
    assert results == expected * 4
    with ThreadPoolExecutor(2) as pool:
        here = saml.compiled_schema("saml-schema-protocol-2.0.xsd")
        there = pool.submit(saml.compiled_schema, "saml-schema-protocol-2.0.xsd").result()
    assert here is saml.compiled_schema("saml-schema-protocol-2.0.xsd") and there is not here


def test_python3_saml_itself_is_left_as_it_is() -> None:
    """Only our subclass sees the compiled schema; the library's module is not patched."""
    import onelogin.saml2.response as library
    from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

    assert library.OneLogin_Saml2_XML is OneLogin_Saml2_XML
    assert library.OneLogin_Saml2_Response.is_valid.__globals__ is vars(library)
    assert saml._Response.is_valid.__code__ is library.OneLogin_Saml2_Response.is_valid.__code__
