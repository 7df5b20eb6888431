"""A throwaway test IdP: its own RSA key and self-signed certificate, generated at test time,
and SAML 2.0 Responses signed with python-xmlsec (through python3-saml's ``add_sign``).

``TestIdp.response(...)`` builds a Response as Okta/Entra would post it (SAML core §2.3.3,
profiles §4.1.4.2: bearer SubjectConfirmation with Recipient and NotOnOrAfter), signs the
assertion (default) and/or the response, and returns it base64-encoded for the ACS form.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
ENTRA_GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
ENTRA_GROUPS_LINK = "http://schemas.microsoft.com/claims/groups.link"


def make_key_and_cert(common_name: str = "test-idp") -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _xml_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class TestIdp:
    __test__ = False  # not a pytest class

    entity_id: str = field(default_factory=lambda: f"https://idp.test/{uuid.uuid4().hex[:8]}")
    sso_url: str = "https://idp.test/sso"
    key: str = ""
    cert: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key, self.cert = make_key_and_cert()

    def assertion_xml(
        self,
        *,
        acs_url: str,
        audience: str,
        name_id: str,
        attributes: dict[str, list[str]],
        in_response_to: str | None,
        now: dt.datetime | None = None,
        lifetime: dt.timedelta = dt.timedelta(minutes=5),
        assertion_id: str | None = None,
        recipient: str | None = None,
        name_id_xml: str | None = None,
    ) -> str:
        now = now or dt.datetime.now(dt.UTC)
        irt = f' InResponseTo="{in_response_to}"' if in_response_to else ""
        attrs = "".join(
            f'<saml:Attribute Name="{name}">'
            + "".join(
                f'<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">'
                f"{_xml_escape(v)}</saml:AttributeValue>"
                for v in values
            )
            + "</saml:Attribute>"
            for name, values in attributes.items()
        )
        nid = name_id_xml if name_id_xml is not None else _xml_escape(name_id)
        return (
            f'<saml:Assertion xmlns:saml="{SAML}" ID="{assertion_id or "_a" + uuid.uuid4().hex}" '
            f'Version="2.0" IssueInstant="{_ts(now)}">'
            f"<saml:Issuer>{self.entity_id}</saml:Issuer>"
            "<saml:Subject>"
            '<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">'
            f"{nid}</saml:NameID>"
            '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
            f'<saml:SubjectConfirmationData NotOnOrAfter="{_ts(now + lifetime)}" '
            f'Recipient="{recipient or acs_url}"{irt}/>'
            "</saml:SubjectConfirmation></saml:Subject>"
            f'<saml:Conditions NotBefore="{_ts(now - dt.timedelta(seconds=30))}" '
            f'NotOnOrAfter="{_ts(now + lifetime)}">'
            f"<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience>"
            "</saml:AudienceRestriction></saml:Conditions>"
            f'<saml:AuthnStatement AuthnInstant="{_ts(now)}" SessionIndex="_s1">'
            "<saml:AuthnContext><saml:AuthnContextClassRef>"
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
            f"<saml:AttributeStatement>{attrs}</saml:AttributeStatement>"
            "</saml:Assertion>"
        )

    def sign(self, xml: str, *, sha1: bool = False, key: str | None = None) -> str:
        """Sign the root element of ``xml`` (Response or Assertion) with this IdP's key."""
        signed = OneLogin_Saml2_Utils.add_sign(
            xml,
            key or self.key,
            self.cert,
            sign_algorithm=C.RSA_SHA1 if sha1 else C.RSA_SHA256,
            digest_algorithm=C.SHA1 if sha1 else C.SHA256,
        )
        text = signed.decode() if isinstance(signed, bytes) else str(signed)
        return text.split("?>", 1)[1] if text.startswith("<?xml") else text

    def response_xml(
        self,
        assertion: str,
        *,
        destination: str | None,
        in_response_to: str | None,
        now: dt.datetime | None = None,
        extra: str = "",
    ) -> str:
        now = now or dt.datetime.now(dt.UTC)
        dest = f' Destination="{destination}"' if destination else ""
        irt = f' InResponseTo="{in_response_to}"' if in_response_to else ""
        return (
            f'<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" '
            f'ID="_r{uuid.uuid4().hex}" Version="2.0" IssueInstant="{_ts(now)}"{dest}{irt}>'
            f"<saml:Issuer>{self.entity_id}</saml:Issuer>"
            '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
            f"</samlp:Status>{assertion}{extra}</samlp:Response>"
        )

    def response(
        self,
        *,
        acs_url: str,
        audience: str,
        name_id: str = "ada@example.com",
        groups: list[str] | None = None,
        in_response_to: str | None = None,
        sign_assertion: bool = True,
        sign_response: bool = False,
        sha1: bool = False,
        **kwargs: object,
    ) -> str:
        """A complete, base64-encoded Response for the ACS form field ``SAMLResponse``."""
        attributes = {"email": [name_id], "firstName": ["Ada"], "lastName": ["Lovelace"]}
        if groups is not None:
            attributes["groups"] = groups
        extra_attrs = kwargs.pop("attributes", None)
        if isinstance(extra_attrs, dict):
            attributes.update(extra_attrs)
        destination = kwargs.pop("destination", acs_url)
        assertion = self.assertion_xml(
            acs_url=acs_url,
            audience=audience,
            name_id=name_id,
            attributes=attributes,
            in_response_to=in_response_to,
            **kwargs,  # type: ignore[arg-type]
        )
        if sign_assertion:
            assertion = self.sign(assertion, sha1=sha1)
        xml = self.response_xml(
            assertion,
            destination=destination,
            in_response_to=in_response_to,  # type: ignore[arg-type]
        )
        if sign_response:
            xml = self.sign(xml, sha1=sha1)
        return encode(xml)


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()


def decode(b64: str) -> str:
    return base64.b64decode(b64).decode()
