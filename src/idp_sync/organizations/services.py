"""Use cases for organizations and their authorization settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.errors import Conflict, NotFound, Unprocessable
from idp_sync.events.services import record_event
from idp_sync.ids import new_id
from idp_sync.organizations import serializers as ser
from idp_sync.organizations.models import Organization, OrganizationDomain

DOMAIN_STATES = ("pending", "verified", "failed")


@dataclass
class DomainInput:
    domain: str
    state: str = "pending"


def get_organization(session: Session, organization_id: str) -> Organization:
    org = session.get(Organization, organization_id)
    if org is None:
        raise NotFound(f"organization {organization_id} not found")
    return org


def get_by_external_id(session: Session, external_id: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.external_id == external_id))
    if org is None:
        raise NotFound(f"no organization with external_id '{external_id}'")
    return org


def _check_external_id(session: Session, external_id: str | None, own_id: str | None) -> None:
    if external_id is None:
        return
    other = session.scalar(select(Organization.id).where(Organization.external_id == external_id))
    if other is not None and other != own_id:
        raise Conflict(
            f"external_id '{external_id}' is used by another organization",
            code="external_id_taken",
        )


def _domains(org_id: str, domains: list[DomainInput]) -> list[OrganizationDomain]:
    now = utcnow()
    seen: dict[str, OrganizationDomain] = {}
    for d in domains:
        name = d.domain.strip().lower()
        if not name or "." not in name or len(name) > 253:  # RFC 1035: at most 253 characters
            raise Unprocessable(
                f"'{d.domain}' is not a domain",
                errors=[{"code": "invalid_domain", "field": "domains"}],
            )
        if d.state not in DOMAIN_STATES:
            raise Unprocessable(f"domain state must be one of {', '.join(DOMAIN_STATES)}")
        seen[name] = OrganizationDomain(
            id=new_id("organization_domain"),
            organization_id=org_id,
            domain=name,
            state=d.state,
            created_at=now,
            updated_at=now,
        )
    return list(seen.values())


def create_organization(
    session: Session,
    *,
    name: str,
    domains: list[DomainInput],
    external_id: str | None,
    metadata: dict[str, str] | None,
    allow_profiles_outside_organization: bool | None,
) -> Organization:
    _check_external_id(session, external_id, None)
    now = utcnow()
    org_id = new_id("organization")
    org = Organization(
        id=org_id,
        name=name,
        external_id=external_id,
        metadata_=metadata or {},
        allow_profiles_outside_organization=bool(allow_profiles_outside_organization),
        created_at=now,
        updated_at=now,
        domains=_domains(org_id, domains),
    )
    session.add(org)
    session.flush()
    record_event(session, "organization.created", ser.organization(org), organization_id=org.id)
    return org


def update_organization(
    session: Session, org: Organization, changes: dict[str, Any]
) -> Organization:
    """Apply the fields present in ``changes`` (a PUT of WorkOS updates what it is given)."""
    if "external_id" in changes:
        _check_external_id(session, changes["external_id"], org.id)
        org.external_id = changes["external_id"]
    if changes.get("name") is not None:
        org.name = changes["name"]
    if "metadata" in changes:
        org.metadata_ = changes["metadata"] or {}
    if changes.get("allow_profiles_outside_organization") is not None:
        org.allow_profiles_outside_organization = changes["allow_profiles_outside_organization"]
    if changes.get("stripe_customer_id") is not None:
        org.stripe_customer_id = changes["stripe_customer_id"]
    if changes.get("domains") is not None:
        org.domains = _domains(org.id, changes["domains"])
    org.updated_at = utcnow()
    session.flush()
    record_event(session, "organization.updated", ser.organization(org), organization_id=org.id)
    return org


def delete_organization(session: Session, org: Organization) -> None:
    data = ser.organization(org)
    session.delete(org)
    session.flush()
    record_event(session, "organization.deleted", data, organization_id=org.id)


def list_query(*, domains: list[str], search: str | None) -> Select[tuple[Organization]]:
    query = select(Organization)
    if domains:
        wanted = [d.strip().lower() for d in domains if d.strip()]
        query = query.where(
            Organization.id.in_(
                select(OrganizationDomain.organization_id).where(
                    OrganizationDomain.domain.in_(wanted)
                )
            )
        )
    if search:
        query = query.where(func.lower(Organization.name).contains(search.lower(), autoescape=True))
    return query
