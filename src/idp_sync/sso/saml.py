"""Strict validation of a SAML Response posted to the ACS (issue 5 point 3). No I/O.

python3-saml in strict mode verifies the signature against this connection's certificates
and the protocol rules; before it runs, this module refuses what it leaves to the
application or checks loosely:

* size, base64, and any DTD or entity declaration (XXE, billion laughs) - refused before
  python3-saml parses anything, with an lxml parser that resolves no entity and never
  touches the network;
* structure against signature wrapping (XSW1-XSW8): exactly one Response (the root) and
  exactly one Assertion, a direct child of it; no duplicate ID; every ds:Signature a
  direct child of the Response or of that Assertion, referencing its parent;
* comments inside the Assertion (the NameID comment-split attack, CVE-2017-11427);
* SHA-1 signatures and digests, unless the connection allows them;
* Destination (SAML core §3.2.2) and the bearer SubjectConfirmationData Recipient
  (SAML profiles §4.1.4.2) equal to the ACS URL - python3-saml compares by prefix and
  substring; audience equal to the SP entity id; NotBefore/NotOnOrAfter with our own
  bounded skew (python3-saml allows a fixed 300 s on Conditions; it checks the
  SubjectConfirmationData window with no skew at all, which stays in force).

InResponseTo and the replay cache need the database: ``flow`` checks them with the
values returned here, which are read only from the signed assertion.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import threading
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree
from onelogin.saml2 import xml_utils
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.errors import OneLogin_Saml2_ValidationError as VE
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
RESPONSE = f"{{{NS['samlp']}}}Response"
ASSERTION = f"{{{NS['saml']}}}Assertion"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
SHA1_ALGORITHMS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
        "http://www.w3.org/2000/09/xmldsig-more#ecdsa-sha1",
    }
)

# python3-saml's error codes -> our short reason codes.
_ONELOGIN_REASONS = {
    VE.INVALID_SIGNATURE: "invalid_signature",
    VE.NO_SIGNATURE_FOUND: "unsigned",
    VE.NO_SIGNED_ASSERTION: "unsigned",
    VE.WRONG_AUDIENCE: "wrong_audience",
    VE.WRONG_DESTINATION: "wrong_destination",
    VE.EMPTY_DESTINATION: "wrong_destination",
    VE.WRONG_SUBJECTCONFIRMATION: "subject_confirmation_invalid",
    VE.ASSERTION_EXPIRED: "expired",
    VE.ASSERTION_TOO_EARLY: "not_yet_valid",
    VE.SESSION_EXPIRED: "expired",
    VE.WRONG_ISSUER: "wrong_issuer",
    VE.ISSUER_MULTIPLE_IN_RESPONSE: "wrong_issuer",
    VE.ISSUER_NOT_FOUND_IN_ASSERTION: "wrong_issuer",
    VE.WRONG_NUMBER_OF_ASSERTIONS: "assertion_count",
    VE.DEPRECATED_SIGNATURE_METHOD: "sha1_forbidden",
    VE.DEPRECATED_DIGEST_METHOD: "sha1_forbidden",
    VE.INVALID_XML_FORMAT: "schema_invalid",
    VE.STATUS_CODE_IS_NOT_SUCCESS: "idp_status_not_success",
    VE.WRONG_INRESPONSETO: "in_response_to_mismatch",
    VE.NO_NAMEID: "missing_name_id",
    VE.EMPTY_NAMEID: "missing_name_id",
}


class SamlRefusal(Exception):
    """A response refused; ``reason`` is the short code returned and put in the event."""

    def __init__(self, reason: str, status_code: int = 400, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        # For the log only, never the client: which check of python3-saml failed (its
        # error class and code), never the response's content.
        self.detail = detail


@dataclass(frozen=True)
class SpConfig:
    """What a connection expects of a response."""

    sp_entity_id: str
    acs_url: str
    idp_entity_id: str
    idp_sso_url: str
    certs: tuple[str, ...]
    allow_sha1: bool = False
    skew_seconds: int = 120
    max_bytes: int = 256 * 1024


@dataclass(frozen=True)
class ValidAssertion:
    """Values read from the signed assertion only."""

    assertion_id: str
    name_id: str
    attributes: dict[str, list[str]]
    in_response_to: str | None
    not_on_or_after: dt.datetime


_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": False,
    "remove_pis": True,
}


def decode(posted: str, max_bytes: int) -> bytes:
    """The XML of a posted ``SAMLResponse``, size-limited (checked before decoding)."""
    if len(posted) > (max_bytes * 4) // 3 + 4:
        raise SamlRefusal("response_too_large", 413)
    try:
        xml = base64.b64decode("".join(posted.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SamlRefusal("malformed_response") from None
    if len(xml) > max_bytes:
        raise SamlRefusal("response_too_large", 413)
    return xml


def parse_hardened(xml: bytes) -> etree._Element:
    """Parse without entities, DTD loading or network; any DTD at all is refused, so entity
    declarations (XXE, billion laughs) never reach python3-saml."""
    head = xml[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in xml.lower():
        raise SamlRefusal("dtd_forbidden")
    try:
        root = etree.fromstring(xml, etree.XMLParser(**_PARSER_OPTIONS))
    except etree.XMLSyntaxError:
        raise SamlRefusal("malformed_response") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise SamlRefusal("dtd_forbidden")
    return root


def check_structure(root: etree._Element, allow_sha1: bool) -> etree._Element:
    """Refuse signature-wrapping shapes; return the one Assertion (a child of the root)."""
    if root.tag != RESPONSE:
        raise SamlRefusal("malformed_response")
    if root.xpath("//samlp:Response", namespaces=NS) != [root]:
        raise SamlRefusal("signature_wrapping")  # XSW1/XSW2: a second Response
    if root.xpath("//saml:EncryptedAssertion", namespaces=NS):
        raise SamlRefusal("encrypted_assertion_unsupported")
    assertions = root.xpath("//saml:Assertion", namespaces=NS)
    if len(assertions) != 1:
        raise SamlRefusal("assertion_count")  # XSW3-XSW8 and plain two-assertion responses
    assertion = assertions[0]
    if assertion.getparent() is not root:
        raise SamlRefusal("signature_wrapping")
    ids = [value for value in root.xpath("//@ID")]
    if len(ids) != len(set(ids)):
        raise SamlRefusal("signature_wrapping")
    signatures = root.xpath("//ds:Signature", namespaces=NS)
    if not signatures:
        raise SamlRefusal("unsigned")
    for signature in signatures:
        _check_signature_placement(signature, root, assertion)
        _check_algorithms(signature, allow_sha1)
    if assertion.xpath(".//comment()"):
        raise SamlRefusal("comment_in_assertion")  # NameID comment split, CVE-2017-11427
    return assertion


def _check_signature_placement(
    signature: etree._Element, root: etree._Element, assertion: etree._Element
) -> None:
    parent = signature.getparent()
    if parent is not root and parent is not assertion:
        raise SamlRefusal("signature_wrapping")
    uris = signature.xpath("ds:SignedInfo/ds:Reference/@URI", namespaces=NS)
    if len(uris) != 1 or uris[0] != "#" + (parent.get("ID") or "\0"):
        raise SamlRefusal("signature_wrapping")


def _check_algorithms(signature: etree._Element, allow_sha1: bool) -> None:
    if allow_sha1:
        return
    used = signature.xpath(
        "ds:SignedInfo/ds:SignatureMethod/@Algorithm | ds:SignedInfo/ds:Reference/"
        "ds:DigestMethod/@Algorithm",
        namespaces=NS,
    )
    if any(value in SHA1_ALGORITHMS for value in used):
        raise SamlRefusal("sha1_forbidden")


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        stamp = OneLogin_Saml2_Utils.parse_SAML_to_time(value)
    except Exception:
        raise SamlRefusal("malformed_response") from None
    return dt.datetime.fromtimestamp(stamp, dt.UTC)


def check_conditions(
    root: etree._Element, assertion: etree._Element, sp: SpConfig, now: dt.datetime
) -> tuple[dt.datetime, str | None]:
    """Destination, Recipient, audience and time window, exactly; returns the assertion's
    NotOnOrAfter (how long its id must be remembered) and its signed InResponseTo."""
    destination = root.get("Destination")
    if destination is not None and destination != sp.acs_url:
        raise SamlRefusal("wrong_destination")
    confirmations = assertion.xpath(
        "saml:Subject/saml:SubjectConfirmation[@Method=$m]/saml:SubjectConfirmationData",
        namespaces=NS,
        m=BEARER,
    )
    if len(confirmations) != 1:
        raise SamlRefusal("subject_confirmation_invalid")
    data = confirmations[0]
    if data.get("Recipient") != sp.acs_url:
        raise SamlRefusal("wrong_recipient")
    # SAML core §2.5.1.4: we must be among the audiences of every AudienceRestriction.
    restrictions = assertion.xpath("saml:Conditions/saml:AudienceRestriction", namespaces=NS)
    if not restrictions or any(
        sp.sp_entity_id not in [a.strip() for a in r.xpath("saml:Audience/text()", namespaces=NS)]
        for r in restrictions
    ):
        raise SamlRefusal("wrong_audience")
    skew = dt.timedelta(seconds=sp.skew_seconds)
    conditions = assertion.find("saml:Conditions", NS)
    ends = [_time(data.get("NotOnOrAfter"))]
    starts = [_time(data.get("NotBefore"))]
    if conditions is not None:
        ends.append(_time(conditions.get("NotOnOrAfter")))
        starts.append(_time(conditions.get("NotBefore")))
    if ends[0] is None:  # SAML profiles §4.1.4.2: bearer data MUST carry NotOnOrAfter
        raise SamlRefusal("subject_confirmation_invalid")
    end = min(e for e in ends if e is not None)
    if now >= end + skew:
        raise SamlRefusal("expired")
    if any(s is not None and now + skew < s for s in starts):
        raise SamlRefusal("not_yet_valid")
    in_response_to = data.get("InResponseTo")
    outer = root.get("InResponseTo")
    if outer is not None and outer != in_response_to:
        raise SamlRefusal("in_response_to_mismatch")
    return end, in_response_to


@lru_cache(maxsize=256)  # SpConfig is frozen and hashable; the settings are only read
def onelogin_settings(sp: SpConfig) -> OneLogin_Saml2_Settings:
    return OneLogin_Saml2_Settings(
        {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": sp.sp_entity_id,
                "assertionConsumerService": {
                    "url": sp.acs_url,
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                },
            },
            "idp": {
                "entityId": sp.idp_entity_id,
                "singleSignOnService": {"url": sp.idp_sso_url},
                "x509certMulti": {"signing": list(sp.certs)},
            },
            "security": {
                # A signed assertion, or a signed response enclosing exactly one assertion
                # (checked above): either is enough.
                "wantAssertionsSigned": False,
                "wantMessagesSigned": False,
                "wantNameId": True,
                "wantAttributeStatement": False,
                "rejectDeprecatedAlgorithm": not sp.allow_sha1,
            },
        },
        sp_validation_only=True,
    )


def request_data(acs_url: str) -> dict[str, Any]:
    scheme, _, rest = acs_url.partition("://")
    host, _, path = rest.partition("/")
    return {
        "https": "on" if scheme == "https" else "off",
        "http_host": host,
        "script_name": "/" + path,
    }


# --- python3-saml, with its protocol schema and XPath queries compiled once per thread --
#
# Strict ``is_valid`` reads and compiles the SAML protocol XSD (and the four schemas it
# imports) on every call: about 1.6 ms of its 2.5 ms (PERFORMANCE.md). ``_Response`` runs
# the library's own ``is_valid``, the same code object, with its module globals seen
# through a copy in which ``OneLogin_Saml2_XML.validate_xml`` uses a schema compiled once
# per thread; every check, and the schema, stay the library's. Per thread, not shared:
# lxml's ``XMLSchema.__call__`` validates in a libxml2 context of its own, but connects and
# disconnects the schema object's single error log around it, which two threads must not
# do at once. Nothing global is patched: other users of python3-saml in the process (the
# baseline of bench/saml.py) get the library as it is.

_SCHEMA_DIR = Path(xml_utils.__file__).parent / "schemas"
_compiled_schemas = threading.local()


def compiled_schema(name: str) -> etree.XMLSchema:
    """This thread's compiled copy of python3-saml's schema ``name`` (compiled on first use;
    about 0.6 MB each)."""
    cache: dict[str, etree.XMLSchema] | None = getattr(_compiled_schemas, "by_name", None)
    if cache is None:
        cache = _compiled_schemas.by_name = {}
    schema = cache.get(name)
    if schema is None:
        schema = cache[name] = etree.XMLSchema(etree.parse(str(_SCHEMA_DIR / name)))
    return schema


def compiled_xpath(query: str) -> etree.XPath:
    """This thread's compiled copy of one of python3-saml's XPath queries (its own
    namespace prefixes). The library evaluates each of its ~40 queries per response from
    the string, compiling it every time."""
    cache: dict[str, etree.XPath] | None = getattr(_compiled_schemas, "xpaths", None)
    if cache is None:
        cache = _compiled_schemas.xpaths = {}
    xpath = cache.get(query)
    if xpath is None:
        xpath = cache[query] = etree.XPath(query, namespaces=OneLogin_Saml2_Constants.NSMAP)
    return xpath


class _CompiledSchemaXML(OneLogin_Saml2_XML):  # type: ignore[misc]
    @staticmethod
    def validate_xml(xml: Any, schema: str, debug: bool = False) -> Any:
        """``OneLogin_Saml2_XML.validate_xml``, same results, without recompiling."""
        try:
            xml = OneLogin_Saml2_XML.to_etree(xml)
        except Exception:
            return "unloaded_xml"
        if not compiled_schema(schema).validate(xml):
            return "invalid_xml"
        return xml

    @staticmethod
    def query(dom: Any, query: str, context: Any = None, tagid: str | None = None) -> Any:
        """``OneLogin_Saml2_XML.query``, same results, with the XPath compiled once."""
        source = dom if context is None else context
        if tagid is None:
            return compiled_xpath(query)(source)
        return compiled_xpath(query)(source, tagid=tagid)


def _with_globals(function: types.FunctionType, **names: Any) -> types.FunctionType:
    """``function``'s code, resolving ``names`` to other objects than its module's."""
    rebound = types.FunctionType(
        function.__code__,
        {**function.__globals__, **names},
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    rebound.__doc__ = function.__doc__
    return rebound


class _Response(OneLogin_Saml2_Response):  # type: ignore[misc]
    """The library's class; every method its own code, seeing ``_CompiledSchemaXML``."""


for _name, _function in vars(OneLogin_Saml2_Response).items():
    if isinstance(_function, types.FunctionType):
        setattr(_Response, _name, _with_globals(_function, OneLogin_Saml2_XML=_CompiledSchemaXML))


def validate(posted: str, sp: SpConfig, now: dt.datetime) -> ValidAssertion:
    """Validate a posted ``SAMLResponse`` for connection ``sp``; raise ``SamlRefusal``."""
    if not sp.certs:
        raise SamlRefusal("connection_not_configured", 403)
    xml = decode(posted, sp.max_bytes)
    root = parse_hardened(xml)
    assertion = check_structure(root, sp.allow_sha1)
    not_on_or_after, in_response_to = check_conditions(root, assertion, sp, now)
    response = _Response(onelogin_settings(sp), base64.b64encode(xml))
    try:
        response.is_valid(request_data(sp.acs_url), raise_exceptions=True)
        name_id = response.get_nameid()
        attributes = response.get_attributes()
        assertion_id = response.get_assertion_id()
    except VE as exc:
        reason = _ONELOGIN_REASONS.get(exc.code, "invalid_response")
        raise SamlRefusal(reason, detail=f"OneLogin_Saml2_ValidationError {exc.code}") from None
    except Exception as exc:
        raise SamlRefusal("invalid_response", detail=type(exc).__name__) from None
    if assertion_id != assertion.get("ID") or not name_id:
        raise SamlRefusal("signature_wrapping")
    return ValidAssertion(
        assertion_id=assertion_id,
        name_id=name_id.strip(),
        attributes={k: [str(v) for v in vs] for k, vs in attributes.items()},
        in_response_to=in_response_to,
        not_on_or_after=not_on_or_after,
    )
