"""SCIM wire documents: discovery endpoints (RFC 7644 §4) and resource rendering.

Resources are rendered from the mirror explicitly: the stored attributes (as the IdP
sent them, unknown ones included) plus the server-owned ``id``, ``schemas`` and ``meta``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from idp_sync.directory.models import DirectoryGroup, DirectoryUser
from idp_sync.wire import iso

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
MAX_COUNT = 500
DEFAULT_COUNT = 100
ALWAYS_RETURNED = frozenset({"id", "schemas"})  # RFC 7643 §2.4 "returned": "always"


def user_resource(user: DirectoryUser, base_url: str) -> dict[str, Any]:
    attrs = {k: v for k, v in user.attributes.items() if k not in ("id", "meta", "schemas")}
    schemas = [USER, *_extensions(attrs)]
    if any(k.lower() == "active" for k in attrs):  # as stored: "active" may be left out
        attrs = {k: v for k, v in attrs.items() if k.lower() != "active"} | {"active": user.active}
    return {
        "schemas": schemas,
        "id": user.id,
        **attrs,
        "meta": _meta("User", user.created_at, user.updated_at, user.version, base_url, user.id),
    }


def group_resource(
    group: DirectoryGroup, base_url: str, members: list[dict[str, Any]] | None
) -> dict[str, Any]:
    attrs = {
        k: v for k, v in group.attributes.items() if k not in ("id", "meta", "schemas", "members")
    }
    resource: dict[str, Any] = {"schemas": [GROUP, *_extensions(attrs)], "id": group.id, **attrs}
    if members is not None:
        resource["members"] = members
    resource["meta"] = _meta(
        "Group", group.created_at, group.updated_at, group.version, base_url, group.id
    )
    return resource


def _extensions(attrs: dict[str, Any]) -> list[str]:
    """RFC 7643 §3: ``schemas`` names every schema extension the resource carries: the
    enterprise extension, and any other URN-keyed object an IdP sent (kept as sent, e.g.
    an Okta custom extension), so the response never has attributes outside its schemas."""
    core = {USER.lower(), GROUP.lower()}
    return [
        key
        for key, value in attrs.items()
        if key.lower().startswith("urn:") and key.lower() not in core and isinstance(value, dict)
    ]


def _meta(
    kind: str, created: Any, modified: Any, version: int, base: str, rid: str
) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": iso(created),
        "lastModified": iso(modified),
        "version": f'W/"{version}"',
        "location": f"{base}/{kind}s/{rid}",
    }


def project(resource: dict[str, Any], attributes: list[str], excluded: list[str]) -> dict[str, Any]:
    """RFC 7644 §3.4.2.5: keep only ``attributes`` (or drop ``excludedAttributes``)."""
    wanted = {_top(a) for a in attributes}
    dropped = {_top(a) for a in excluded} - ALWAYS_RETURNED
    if wanted:
        keep = wanted | ALWAYS_RETURNED
        return {k: v for k, v in resource.items() if k.lower() in keep}
    return {k: v for k, v in resource.items() if k.lower() not in dropped}


def _top(name: str) -> str:
    """The top-level attribute of ``name`` (``urn:...:User:name.givenName`` -> ``name``)."""
    lowered = name.strip().lower()
    if lowered.startswith("urn:"):
        if lowered == ENTERPRISE.lower() or lowered.startswith(ENTERPRISE.lower() + ":"):
            return ENTERPRISE.lower()
        lowered = lowered.rpartition(":")[2]
    return lowered.split(".", 1)[0]


def split_list(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part.strip()]


def list_response(resources: Iterable[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    items = list(resources)
    return {
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(items),
        "Resources": items,
    }


def service_provider_config(base_url: str) -> dict[str, Any]:
    return {
        "schemas": [SPC],
        "documentationUri": "https://github.com/idp-sync/idp-sync/blob/main/docs/scim.md",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_COUNT},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The directory's SCIM bearer token",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def resource_types(base_url: str) -> list[dict[str, Any]]:
    user = {
        "schemas": [RESOURCE_TYPE],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "schema": USER,
        "schemaExtensions": [{"schema": ENTERPRISE, "required": False}],
        "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/User"},
    }
    group = {
        "schemas": [RESOURCE_TYPE],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "schema": GROUP,
        "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/Group"},
    }
    return [user, group]


def _attr(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "type": kind,
        "multiValued": False,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    }
    return {**base, **extra}


def _sub(name: str, *subs: dict[str, Any], multi: bool = False, **extra: Any) -> dict[str, Any]:
    return _attr(name, "complex", multiValued=multi, subAttributes=list(subs), **extra)


def schemas(base_url: str) -> list[dict[str, Any]]:
    multi = [_attr("value"), _attr("type"), _attr("primary", "boolean"), _attr("display")]
    user_attrs = [
        _attr("userName", required=True, uniqueness="server"),
        _sub(
            "name",
            _attr("formatted"),
            _attr("familyName"),
            _attr("givenName"),
            _attr("middleName"),
            _attr("honorificPrefix"),
            _attr("honorificSuffix"),
        ),
        _attr("displayName"),
        _attr("nickName"),
        _attr("title"),
        _attr("userType"),
        _attr("preferredLanguage"),
        _attr("locale"),
        _attr("timezone"),
        _attr("active", "boolean"),
        _attr("externalId", caseExact=True),
        _sub("emails", *multi, multi=True),
        _sub("phoneNumbers", *multi, multi=True),
        _sub(
            "addresses",
            _attr("formatted"),
            _attr("streetAddress"),
            _attr("locality"),
            _attr("region"),
            _attr("postalCode"),
            _attr("country"),
            _attr("type"),
            _attr("primary", "boolean"),
            multi=True,
        ),
        _sub(
            "groups",
            _attr("value", mutability="readOnly"),
            _attr("display", mutability="readOnly"),
            multi=True,
            mutability="readOnly",
        ),
    ]
    group_attrs = [
        _attr("displayName", required=True, uniqueness="server"),
        _attr("externalId", caseExact=True),
        _sub(
            "members",
            _attr("value", mutability="immutable"),
            _attr("display"),
            _attr("$ref", "reference"),
            multi=True,
        ),
    ]
    enterprise_attrs = [
        _attr("employeeNumber"),
        _attr("costCenter"),
        _attr("organization"),
        _attr("division"),
        _attr("department"),
        _sub("manager", _attr("value"), _attr("displayName")),
    ]
    return [
        _schema(USER, "User", user_attrs, base_url),
        _schema(GROUP, "Group", group_attrs, base_url),
        _schema(ENTERPRISE, "EnterpriseUser", enterprise_attrs, base_url),
    ]


def _schema(urn: str, name: str, attributes: list[dict[str, Any]], base: str) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA],
        "id": urn,
        "name": name,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{urn}"},
    }
