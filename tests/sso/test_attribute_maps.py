"""Which attribute carries what, per IdP (issue 5 point 4), read from a validated assertion."""

from __future__ import annotations

import datetime as dt

from idp_sync.sso.attributes import ENTRA_GROUPS, ENTRA_GROUPS_OVERAGE, read_profile
from idp_sync.sso.saml import ValidAssertion


def _assertion(
    attributes: dict[str, list[str]], name_id: str = "nid@example.com"
) -> ValidAssertion:
    return ValidAssertion(
        assertion_id="_a1",
        name_id=name_id,
        attributes=attributes,
        in_response_to=None,
        not_on_or_after=dt.datetime.now(dt.UTC),
    )


def test_okta_defaults_read_groups_and_names() -> None:
    attrs = {"email": ["Ada@Example.com"], "firstName": ["Ada"], "groups": ["Eng", "Admins", "Eng"]}
    profile = read_profile(_assertion(attrs), "OktaSAML", {})
    assert profile.email == "ada@example.com"
    assert profile.first_name == "Ada" and profile.last_name is None
    assert profile.groups == ("Eng", "Admins")  # multi-valued, duplicates dropped
    assert profile.idp_id == "nid@example.com"


def test_entra_defaults_use_claim_uris_and_object_ids() -> None:
    claims = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
    attrs = {
        claims + "emailaddress": ["ed@example.com"],
        "http://schemas.microsoft.com/identity/claims/objectidentifier": ["oid-1"],
        ENTRA_GROUPS: ["6f1c6c8e-0000-4000-8000-000000000001"],
    }
    profile = read_profile(_assertion(attrs), "AzureSAML", {})
    assert profile.idp_id == "oid-1" and profile.email == "ed@example.com"
    assert profile.groups == ("6f1c6c8e-0000-4000-8000-000000000001",)


def test_entra_overage_means_groups_unknown_not_empty() -> None:
    attrs = {ENTRA_GROUPS_OVERAGE: ["https://graph.microsoft.com/v1.0/users/x/getMemberObjects"]}
    assert read_profile(_assertion(attrs), "AzureSAML", {}).groups is None
    assert read_profile(_assertion({}), "AzureSAML", {}).groups == ()


def test_attribute_maps_override_defaults_field_by_field() -> None:
    maps = {"standard_attributes": {"groups": "memberOf", "email": None}}
    attrs = {"email": ["a@example.com"], "memberOf": ["Ops"], "groups": ["Ignored"]}
    profile = read_profile(_assertion(attrs), "GenericSAML", maps)
    assert profile.groups == ("Ops",) and profile.email == "a@example.com"


def test_onelogin_defaults() -> None:
    attrs = {"User.email": ["o@example.com"], "User.FirstName": ["O"], "memberOf": ["Sales"]}
    profile = read_profile(_assertion(attrs), "OneLoginSAML", {})
    assert profile.email == "o@example.com" and profile.groups == ("Sales",)
