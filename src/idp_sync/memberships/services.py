"""Use cases for organization memberships.

An API role change is written and recomputed in the request (DESIGN §4): the resolver is
pure and cheap, so the response already shows the effective roles.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session, lazyload

from idp_sync.db import utcnow
from idp_sync.errors import Conflict, NotFound, Unprocessable
from idp_sync.events.services import record_event
from idp_sync.ids import new_id
from idp_sync.memberships import serializers as ser
from idp_sync.memberships.models import MembershipApiRole, OrganizationMembership
from idp_sync.memberships.recompute import OrgRoles, RoleCatalog, recompute
from idp_sync.organizations.models import Organization
from idp_sync.rbac.models import EnvironmentSettings
from idp_sync.users.models import User

STATUSES = ("active", "inactive", "pending")


def get_membership(session: Session, membership_id: str) -> OrganizationMembership:
    membership = session.get(OrganizationMembership, membership_id)
    if membership is None:
        raise NotFound(f"organization membership {membership_id} not found")
    return membership


def lock_membership(session: Session, membership_id: str) -> OrganizationMembership:
    """The membership under a row lock: concurrent recomputes of it serialise (DESIGN §4)."""
    membership = session.scalar(
        select(OrganizationMembership)
        .where(OrganizationMembership.id == membership_id)
        .with_for_update(of=OrganizationMembership)
        .execution_options(populate_existing=True)
    )
    if membership is None:
        raise NotFound(f"organization membership {membership_id} not found")
    return membership


def validate_role_slugs(catalog: RoleCatalog, org: OrgRoles, slugs: Sequence[str]) -> list[str]:
    """The requested API roles, checked: assignable here, and one unless multiple roles is on."""
    return check_role_slugs(slugs, assignable=org.by_slug, multiple_roles=catalog.multiple_roles)


def check_role_slugs(
    slugs: Sequence[str], *, assignable: Container[str], multiple_roles: bool
) -> list[str]:
    """``slugs`` without repeats, or ``Unprocessable`` with the WorkOS error code."""
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        raise Unprocessable(
            "role_slugs must not be empty", errors=[{"code": "required", "field": "role_slugs"}]
        )
    if len(wanted) > 1 and not multiple_roles:
        raise Unprocessable(
            "more than one role was given but multiple roles is not enabled in this environment",
            code="multiple_roles_not_enabled",
        )
    unknown = [slug for slug in wanted if slug not in assignable]
    if unknown:
        # An organization role of another organization is unknown here, by design.
        raise Unprocessable(
            f"role(s) not available in this organization: {', '.join(unknown)}",
            code="role_not_found",
            errors=[{"code": "role_not_found", "field": "role_slug"}],
        )
    return wanted


def _set_api_roles(membership: OrganizationMembership, slugs: list[str], org: OrgRoles) -> bool:
    current = [r.role_slug for r in membership.api_roles]
    if current == slugs:
        return False
    keep = {r.role_slug: r for r in membership.api_roles if r.role_slug in slugs}
    for old in list(membership.api_roles):
        if old.role_slug not in keep:
            membership.api_roles.remove(old)
    for position, slug in enumerate(slugs):
        row = keep.get(slug)
        if row is None:
            membership.api_roles.append(
                MembershipApiRole(role_id=org.by_slug[slug].id, role_slug=slug, position=position)
            )
        else:
            row.position = position
    membership.api_roles.sort(key=lambda r: r.position)
    return True


def create_membership(
    session: Session, *, organization_id: str, user_id: str, role_slugs: list[str] | None
) -> OrganizationMembership:
    """A new active membership; an inactive one for the same pair is reactivated instead."""
    return add_membership(
        session, organization_id=organization_id, user_id=user_id, role_slugs=role_slugs
    )[0]


def add_membership(
    session: Session, *, organization_id: str, user_id: str, role_slugs: list[str] | None
) -> tuple[OrganizationMembership, str]:
    """``create_membership``, also returning the organization's name (the API object
    embeds it). The organization, the user, an existing membership of the pair and the
    environment settings are read in one statement: this is the path every SDK
    ``create_organization_membership`` takes."""
    found = session.execute(
        select(Organization.name, User, OrganizationMembership, EnvironmentSettings)
        .select_from(Organization)
        .outerjoin(User, User.id == user_id)
        .outerjoin(
            OrganizationMembership,
            and_(
                OrganizationMembership.organization_id == Organization.id,
                OrganizationMembership.user_id == User.id,
            ),
        )
        # Into the identity map, where RoleCatalog's environment_settings() finds it
        # (``_settings`` below holds it until then: the identity map is weak).
        .outerjoin(EnvironmentSettings, EnvironmentSettings.id == 1)
        .where(Organization.id == organization_id)
        .options(lazyload(OrganizationMembership.user), lazyload(OrganizationMembership.roles))
    ).one_or_none()
    if found is None:
        raise NotFound(f"organization {organization_id} not found")
    organization_name, user, existing, _settings = found
    if user is None:
        raise NotFound(f"user {user_id} not found")
    catalog = RoleCatalog(session)
    org = catalog.for_org(organization_id)
    slugs = validate_role_slugs(catalog, org, role_slugs) if role_slugs is not None else []
    if existing is not None:
        if existing.status == "active":
            raise Conflict(
                f"user {user_id} is already a member of {organization_id}",
                code="organization_membership_already_exists",
            )
        membership = _reactivate(session, lock_membership(session, existing.id), catalog, slugs)
        return membership, organization_name
    return _insert(session, organization_id, user, catalog, slugs), organization_name


def _insert(
    session: Session,
    organization_id: str,
    user: User,
    catalog: RoleCatalog,
    slugs: list[str],
) -> OrganizationMembership:
    now = utcnow()
    membership = OrganizationMembership(
        id=new_id("membership"),
        organization_id=organization_id,
        user_id=user.id,
        status="active",
        created_at=now,
        updated_at=now,
        roles=[],
        api_roles=[],
        custom_attributes={},
        provenance={},
        user=user,
    )
    session.add(membership)
    _set_api_roles(membership, slugs, catalog.for_org(organization_id))
    recompute(session, [membership], catalog, reason="membership_created")
    session.flush()
    record_event(
        session,
        "organization_membership.created",
        ser.event_data(membership),
        organization_id=organization_id,
    )
    return membership


def _reactivate(
    session: Session, membership: OrganizationMembership, catalog: RoleCatalog, slugs: list[str]
) -> OrganizationMembership:
    org = catalog.for_org(membership.organization_id)
    _set_api_roles(membership, slugs, org)
    membership.status = "active"
    recompute(session, [membership], catalog, reason="membership_reactivated")
    _updated(session, membership)
    return membership


def update_roles(
    session: Session, membership_id: str, role_slugs: list[str]
) -> OrganizationMembership:
    """Set the roles given by API; IdP-sourced roles still take precedence (DESIGN §3)."""
    membership = lock_membership(session, membership_id)
    catalog = RoleCatalog(session)
    org = catalog.for_org(membership.organization_id)
    slugs = validate_role_slugs(catalog, org, role_slugs)
    _set_api_roles(membership, slugs, org)
    if recompute(session, [membership], catalog, reason="api_role_change"):
        _updated(session, membership)
    return membership


def set_status(session: Session, membership_id: str, status: str) -> OrganizationMembership:
    membership = lock_membership(session, membership_id)
    if membership.status != status:
        membership.status = status
        _updated(session, membership)
    return membership


def _updated(session: Session, membership: OrganizationMembership) -> None:
    membership.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        "organization_membership.updated",
        ser.event_data(membership),
        organization_id=membership.organization_id,
    )


def delete_membership(session: Session, membership: OrganizationMembership) -> None:
    data = ser.event_data(membership)
    session.delete(membership)
    session.flush()
    record_event(
        session, "organization_membership.deleted", data, organization_id=membership.organization_id
    )


def list_query(
    *, organization_id: str | None, user_id: str | None, statuses: list[str]
) -> Select[tuple[OrganizationMembership]]:
    if not organization_id and not user_id:
        raise Unprocessable(
            "give organization_id or user_id",
            errors=[{"code": "required", "field": "organization_id"}],
        )
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise Unprocessable(
            f"unknown status(es): {', '.join(bad)}",
            errors=[{"code": "invalid", "field": "statuses"}],
        )
    query = select(OrganizationMembership).where(
        OrganizationMembership.status.in_(statuses or ["active"])
    )
    if organization_id:
        query = query.where(OrganizationMembership.organization_id == organization_id)
    if user_id:
        query = query.where(OrganizationMembership.user_id == user_id)
    return query
