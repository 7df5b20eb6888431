"""Issue 4 point 9: every SCIM response the tests see is valid against the SCIM schemas.

``check_response`` is an httpx response hook installed on every SCIM client of the tests
(``dsync_helpers.scim_client``, and the httpx2 client scim2-tester drives). It validates
the body with scim2-models (python-scim's RFC 7643/7644 models), in the context of the
request that produced it (RFC 7644 §3.2: what a creation, query, replacement, patch or
search response must and must not carry), and raises ``AssertionError`` on an invalid
one, which fails the test that made the call.

Validation is strict (``ScimPolicy`` defaults, the interoperability profile's reading),
with two tolerances: idp-sync keeps and returns attributes an IdP sends that no schema of
the server defines (docs/scim.md, "Unknown attributes are kept as sent"), so an unknown
attribute passes where a test sent it; and ``.local`` email domains pass (see
``_special_use_domains_allowed``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import email_validator
import httpx
from pydantic import ValidationError
from scim2_models import (
    Context,
    EnterpriseUser,
    Error,
    Group,
    ListResponse,
    ResourceType,
    Schema,
    ScimPolicy,
    ServiceProviderConfig,
    User,
)

SCIM_MEDIA_TYPE = "application/scim+json"
_SCIM_PATH = re.compile(r"^/scim/v2/[^/]+(?P<rest>/.*)?$")
_NO_BODY = frozenset({204, 205, 304})

_User = User[EnterpriseUser]
_CONTEXTS = {
    "POST": Context.RESOURCE_CREATION_RESPONSE,
    "GET": Context.RESOURCE_QUERY_RESPONSE,
    "PUT": Context.RESOURCE_REPLACEMENT_RESPONSE,
    "PATCH": Context.RESOURCE_PATCH_RESPONSE,
}
_STRICT = ScimPolicy()
_SENT_PATHS: set[tuple[str, ...]] = set()
_FILTERS = re.compile(r"\[[^\]]*\]")  # value filters in PATCH paths: emails[type eq "work"]
_CORE_URNS = frozenset({str(User.__schema__).lower(), str(Group.__schema__).lower()})
# Attributes no schema defines are what the IdP sent, kept as sent (see module docstring).
_KEEP_UNKNOWN = ScimPolicy(unknown=ScimPolicy.Unknown.keep)


def check_response(response: httpx.Response) -> None:
    """Fail the calling test if ``response`` is not a valid SCIM response."""
    match = _SCIM_PATH.match(response.request.url.path)
    if match is None:
        return
    rest = (match.group("rest") or "/").rstrip("/") or "/"
    _record_sent_paths(response.request)
    response.read()
    if response.status_code in _NO_BODY:
        assert not response.content, f"{response.status_code} with a body: {response.text}"
        return
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith(SCIM_MEDIA_TYPE), f"content-type {content_type!r}"
    body = json.loads(response.content)
    # RFC 7643 §3 / RFC 7644 §3.12: every resource and message names its schemas.
    assert isinstance(body, dict) and body.get("schemas"), f"no schemas: {response.text}"
    model, context = _model_for(response.request.method, rest, response.status_code)
    try:
        _validate(model, body, context)
    except ValidationError as exc:
        raise AssertionError(
            f"invalid SCIM response to {response.request.method} {rest} "
            f"({response.status_code}, {model}): {exc}\n{json.dumps(body)[:2000]}"
        ) from None
    if response.status_code >= 400:  # RFC 7644 §3.12
        assert body["schemas"] == [str(Error.__schema__)], body
        assert body["status"] == str(response.status_code), body


def _validate(model: Any, body: Any, context: Context) -> None:
    """Strict first. A failure that names only attributes no schema defines, each of which
    a test has sent, is retried keeping them: every attribute a schema defines is still
    checked, and an attribute the server made up still fails."""
    with _special_use_domains_allowed():
        try:
            model.model_validate(body, scim_ctx=context, scim_policy=_STRICT)
        except ValidationError as exc:
            if not all(_is_sent_unknown_attribute(error) for error in exc.errors()):
                raise
            model.model_validate(body, scim_ctx=context, scim_policy=_KEEP_UNKNOWN)


def _is_sent_unknown_attribute(error: Any) -> bool:
    where = tuple(str(part).lower() for part in error["loc"] if not isinstance(part, int))
    return bool(error["type"] == "extra_forbidden" and where in _SENT_PATHS)


def _record_sent_paths(request: httpx.Request) -> None:
    """Remember where each attribute a test sends sits (resource bodies, and PATCH paths
    with their values), in any client: a resource written by one client may be read by
    another, and an unknown attribute is tolerated only where a test put it."""
    try:
        body = json.loads(request.content) if request.content else None
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    operations = body.get("Operations")
    if not isinstance(operations, list):
        _walk(body, ())
        return
    for op in operations:
        if isinstance(op, dict):
            for base in _path_prefixes(op.get("path")):
                _walk(op.get("value"), base)


def _walk(value: Any, prefix: tuple[str, ...]) -> None:
    _SENT_PATHS.update(prefix[:end] for end in range(1, len(prefix) + 1))
    if isinstance(value, dict):
        for key, item in value.items():
            for parts in _path_prefixes(key):
                _walk(item, prefix + parts)
    elif isinstance(value, list):
        for item in value:
            _walk(item, prefix)


def _path_prefixes(path: Any) -> list[tuple[str, ...]]:
    """Where a PATCH path or a (dotted, URN-qualified) key may put a value in a resource:
    under its URN for an extension, at the top for a core URN; a path that is a bare URN
    is read both as a schema and as ``schema:attribute``."""
    if not isinstance(path, str) or not path.strip():
        return [()]
    lowered = _FILTERS.sub("", path.strip().lower())
    if not lowered.startswith("urn:"):
        return [tuple(lowered.split("."))]
    urn, _, attribute = lowered.rpartition(":")
    below = tuple(attribute.split("."))
    core = urn in _CORE_URNS
    return [(lowered,), below if core else (urn, *below)]


@contextmanager
def _special_use_domains_allowed() -> Iterator[None]:
    """RFC 7643 §4.1.2: ``emails.value`` SHOULD follow RFC 5321; ``ada@okta.local`` (the
    IdP fixtures' addresses) does. email-validator refuses RFC 6761 special-use names such
    as ``.local`` for deliverability, which is not a SCIM rule: allow them while checking."""
    saved = email_validator.SPECIAL_USE_DOMAIN_NAMES
    email_validator.SPECIAL_USE_DOMAIN_NAMES = []
    try:
        yield
    finally:
        email_validator.SPECIAL_USE_DOMAIN_NAMES = saved


def _model_for(method: str, rest: str, status: int) -> tuple[Any, Context]:
    """The scim2-models class and context of the answer to ``method`` on ``rest``."""
    if status >= 400:
        return Error, Context.DEFAULT
    parts = rest.strip("/").split("/")
    endpoint = parts[0]
    if endpoint == "ServiceProviderConfig":
        return ServiceProviderConfig, Context.RESOURCE_QUERY_RESPONSE
    if endpoint in ("ResourceTypes", "Schemas"):
        one = ResourceType if endpoint == "ResourceTypes" else Schema
        return (one if len(parts) > 1 else ListResponse[one]), Context.RESOURCE_QUERY_RESPONSE
    if endpoint == ".search":
        return ListResponse[_User | Group], Context.SEARCH_RESPONSE
    resource = {"Users": _User, "Groups": Group}[endpoint]
    if parts[-1] == ".search":
        return ListResponse[resource], Context.SEARCH_RESPONSE
    if len(parts) == 1 and method == "GET":
        return ListResponse[resource], Context.RESOURCE_QUERY_RESPONSE
    return resource, _CONTEXTS[method]
