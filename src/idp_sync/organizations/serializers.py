"""Organizations as ``workos.organizations.models.Organization`` expects them."""

from __future__ import annotations

from typing import Any

from idp_sync.organizations.models import Organization, OrganizationDomain
from idp_sync.wire import iso


def domain(d: OrganizationDomain) -> dict[str, Any]:
    return {
        "object": "organization_domain",
        "id": d.id,
        "organization_id": d.organization_id,
        "domain": d.domain,
        "state": d.state,
        "verification_strategy": "manual",
        "verification_token": None,
        "verification_prefix": None,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def organization(o: Organization) -> dict[str, Any]:
    return {
        "object": "organization",
        "id": o.id,
        "name": o.name,
        "domains": [domain(d) for d in o.domains],
        "metadata": dict(o.metadata_ or {}),
        "external_id": o.external_id,
        "stripe_customer_id": o.stripe_customer_id,
        "allow_profiles_outside_organization": o.allow_profiles_outside_organization,
        "created_at": iso(o.created_at),
        "updated_at": iso(o.updated_at),
    }
