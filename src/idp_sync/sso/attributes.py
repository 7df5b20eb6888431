"""Which SAML attribute carries what, per IdP, and reading a profile from a validated assertion.

Defaults per connection type, overridden field by field by the connection's
``attribute_maps.standard_attributes`` (as WorkOS documents ``attribute_maps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idp_sync.sso.saml import ValidAssertion

_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
ENTRA_GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
# Entra ID sends this instead of the groups when a user is in more than 150 groups (SAML):
# the groups are then unknown, not empty.
ENTRA_GROUPS_OVERAGE = "http://schemas.microsoft.com/claims/groups.link"

_GENERIC = {
    "email": "email",
    "first_name": "firstName",
    "last_name": "lastName",
    "groups": "groups",
}
DEFAULT_MAPS: dict[str, dict[str, str]] = {
    "GenericSAML": _GENERIC,
    # Okta: attribute statements named as in WorkOS's Okta guide; group attribute "groups".
    "OktaSAML": _GENERIC,
    # Entra ID: claim URIs; the groups claim carries group object ids.
    "AzureSAML": {
        "idp_id": "http://schemas.microsoft.com/identity/claims/objectidentifier",
        "email": _CLAIMS + "emailaddress",
        "first_name": _CLAIMS + "givenname",
        "last_name": _CLAIMS + "surname",
        "name": "http://schemas.microsoft.com/identity/claims/displayname",
        "groups": ENTRA_GROUPS,
    },
    # Google Workspace: custom attribute mapping; "Group membership" mapped to "groups".
    "GoogleSAML": _GENERIC,
    # OneLogin: default parameter names of its SAML connector.
    "OneLoginSAML": {
        "email": "User.email",
        "first_name": "User.FirstName",
        "last_name": "User.LastName",
        "groups": "memberOf",
    },
    "JumpCloudSAML": _GENERIC,
}
CONNECTION_TYPES = tuple(DEFAULT_MAPS)
FIELDS = ("idp_id", "email", "first_name", "last_name", "name", "groups")


def effective_map(connection_type: str, attribute_maps: dict[str, Any]) -> dict[str, str]:
    merged = dict(DEFAULT_MAPS.get(connection_type, _GENERIC))
    given = attribute_maps.get("standard_attributes") or {}
    merged.update({k: v for k, v in given.items() if k in FIELDS and v})
    return merged


@dataclass(frozen=True)
class SignedProfile:
    idp_id: str
    email: str
    first_name: str | None
    last_name: str | None
    name: str | None
    groups: tuple[str, ...] | None  # None: unknown (Entra groups overage)
    raw_attributes: dict[str, Any]


def _first(attributes: dict[str, list[str]], name: str | None) -> str | None:
    values = attributes.get(name or "") or []
    return values[0].strip() if values and values[0].strip() else None


def read_profile(
    assertion: ValidAssertion, connection_type: str, attribute_maps: dict[str, Any]
) -> SignedProfile:
    """The profile, from the signed assertion's NameID and attributes only."""
    names = effective_map(connection_type, attribute_maps)
    attrs = assertion.attributes
    email = _first(attrs, names.get("email")) or assertion.name_id
    groups: tuple[str, ...] | None
    if names["groups"] in attrs:
        groups = tuple(dict.fromkeys(g.strip() for g in attrs[names["groups"]] if g.strip()))
    elif ENTRA_GROUPS_OVERAGE in attrs:
        groups = None
    else:
        groups = ()
    raw = {k: (v[0] if len(v) == 1 else v) for k, v in attrs.items()}
    return SignedProfile(
        idp_id=_first(attrs, names.get("idp_id")) or assertion.name_id,
        email=email.lower(),
        first_name=_first(attrs, names.get("first_name")),
        last_name=_first(attrs, names.get("last_name")),
        name=_first(attrs, names.get("name")),
        groups=groups,
        raw_attributes=raw,
    )
