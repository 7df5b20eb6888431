"""Recompute memberships' effective roles from current state (DESIGN §3 and §4).

The resolver is pure; this module feeds it (``RoleCatalog`` loads roles and settings
once per unit of work) and writes the result: a membership is written only if its
effective roles changed, with an audit entry. Callers emit the events, because a new
membership's event differs from an updated one's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, lazyload, selectinload

from idp_sync.db import utcnow
from idp_sync.memberships.models import MembershipAudit, MembershipRole, OrganizationMembership
from idp_sync.rbac.models import ENV_SCOPE, OrganizationAuthorizationSettings, Role
from idp_sync.rbac.resolver import IdpInput, MembershipInput, Resolution, RoleState, resolve
from idp_sync.rbac.services import environment_settings, live_roles, merge_priority

# Later sources (SCIM directory users, SSO profiles) register a loader here that returns,
# for membership ids, their (directory, sso) resolver inputs.
IdpLoader = Callable[[Session, Sequence[str]], dict[str, tuple[IdpInput | None, IdpInput | None]]]
IDP_LOADERS: list[IdpLoader] = []


@dataclass(frozen=True)
class OrgRoles:
    state: RoleState
    by_slug: dict[str, Role]


class RoleCatalog:
    """Roles and settings needed to resolve memberships, read once per transaction.

    ``prefetch`` loads what a batch's organizations need in two set-based reads;
    organizations with no roles or settings of their own share one ``OrgRoles``.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.settings = environment_settings(session)  # held: the identity map is weak
        self.default_role = self.settings.default_role_slug
        self.multiple_roles = self.settings.multiple_roles_enabled
        # Environment roles are read with the first organizations' own roles: one query.
        self._env_roles: dict[str, Role] | None = None
        self._orgs: dict[str, OrgRoles] = {}
        self._plain: OrgRoles | None = None

    @property
    def env_roles(self) -> dict[str, Role]:
        if self._env_roles is None:
            self.prefetch([])
        assert self._env_roles is not None
        return self._env_roles

    def for_org(self, organization_id: str) -> OrgRoles:
        cached = self._orgs.get(organization_id)
        if cached is None:
            self.prefetch([organization_id])
            cached = self._orgs[organization_id]
        return cached

    def prefetch(self, organization_ids: Iterable[str]) -> None:
        missing = sorted({o for o in organization_ids if o not in self._orgs})
        if not missing and self._env_roles is not None:
            return
        scopes = [*missing, *([ENV_SCOPE] if self._env_roles is None else [])]
        own: dict[str, list[Role]] = defaultdict(list)
        for role in self.session.scalars(
            select(Role).where(*live_roles(scopes)).options(lazyload(Role.permissions))
        ):
            own[role.scope].append(role)
        if self._env_roles is None:
            self._env_roles = {r.slug: r for r in own.pop(ENV_SCOPE, [])}
        if not missing:
            return
        settings = {
            row.organization_id: row
            for row in self.session.scalars(
                select(OrganizationAuthorizationSettings).where(
                    OrganizationAuthorizationSettings.organization_id.in_(missing)
                )
            )
        }
        for organization_id in missing:
            org_settings = settings.get(organization_id)
            if not own[organization_id] and org_settings is None:
                self._orgs[organization_id] = self._plain_roles()
            else:
                self._orgs[organization_id] = self._build(own[organization_id], org_settings)

    def _plain_roles(self) -> OrgRoles:
        if self._plain is None:
            self._plain = self._build([], None)
        return self._plain

    def _build(self, own: list[Role], org: OrganizationAuthorizationSettings | None) -> OrgRoles:
        by_slug = {**self.env_roles, **{r.slug: r for r in own}}
        order = merge_priority(
            self.settings.priority_order,
            list(by_slug.values()),
            org.priority_order if org else None,
        )
        org_default = None
        if org is not None and org.default_role_id is not None:
            # An environment role or one of the organization's own (DESIGN §2).
            org_default = next(
                (r.slug for r in by_slug.values() if r.id == org.default_role_id), None
            )
        state = RoleState(
            priority_order=tuple(order),
            assignable=frozenset(by_slug),
            default_role=self.default_role,
            org_default_role=org_default,
            multiple_roles=self.multiple_roles,
        )
        return OrgRoles(state=state, by_slug=by_slug)


def idp_inputs(
    session: Session, membership_ids: Sequence[str]
) -> dict[str, tuple[IdpInput | None, IdpInput | None]]:
    merged: dict[str, tuple[IdpInput | None, IdpInput | None]] = {}
    for loader in IDP_LOADERS:
        for membership_id, (directory, sso) in loader(session, membership_ids).items():
            old_dir, old_sso = merged.get(membership_id, (None, None))
            merged[membership_id] = (directory or old_dir, sso or old_sso)
    return merged


def resolve_membership(
    membership: OrganizationMembership,
    org: OrgRoles,
    idp: tuple[IdpInput | None, IdpInput | None] = (None, None),
) -> Resolution:
    member = MembershipInput(
        api_roles=tuple(r.role_slug for r in membership.api_roles),
        directory=idp[0],
        sso=idp[1],
    )
    return resolve(org.state, member)


def recompute(
    session: Session,
    memberships: Sequence[OrganizationMembership],
    catalog: RoleCatalog,
    *,
    reason: str,
) -> list[OrganizationMembership]:
    """Resolve each membership and write those whose roles changed. Returns the changed."""
    _load_api_roles(session, memberships)
    catalog.prefetch(m.organization_id for m in memberships)
    inputs = idp_inputs(session, [m.id for m in memberships]) if IDP_LOADERS else {}
    changed = []
    for membership in memberships:
        org = catalog.for_org(membership.organization_id)
        resolution = resolve_membership(membership, org, inputs.get(membership.id, (None, None)))
        if apply_resolution(session, membership, resolution, org, reason=reason):
            changed.append(membership)
    return changed


def _load_api_roles(session: Session, memberships: Sequence[OrganizationMembership]) -> None:
    """One query for the API roles of every membership that has not loaded them yet."""
    ids = [
        m.id for m in memberships if "api_roles" in inspect(m).unloaded and inspect(m).persistent
    ]
    if ids:
        session.scalars(
            select(OrganizationMembership)
            .where(OrganizationMembership.id.in_(ids))
            .options(selectinload(OrganizationMembership.api_roles))
        ).all()


def apply_resolution(
    session: Session,
    membership: OrganizationMembership,
    resolution: Resolution,
    org: OrgRoles,
    *,
    reason: str,
) -> bool:
    """Write ``resolution`` onto ``membership``; True if its effective roles changed."""
    provenance = {
        "source": resolution.source,
        "uses_default": resolution.uses_default,
        "matched_groups": list(resolution.matched_groups),
        "mapping_ids": list(resolution.mapping_ids),
    }
    if membership.provenance != provenance:
        membership.provenance = provenance
        membership.role_source = resolution.source
        membership.uses_default = resolution.uses_default
    before = [r.role_slug for r in membership.roles]
    after = list(resolution.roles)
    if before == after:
        return False
    _replace_roles(membership, after, org)
    membership.updated_at = utcnow()
    session.add(
        MembershipAudit(
            membership_id=membership.id,
            organization_id=membership.organization_id,
            before_roles=before,
            after_roles=after,
            source=resolution.source,
            reason=reason,
            created_at=membership.updated_at,
        )
    )
    return True


def _replace_roles(membership: OrganizationMembership, slugs: list[str], org: OrgRoles) -> None:
    """Edit the role rows in place: keeping retained rows avoids delete/insert PK clashes."""
    keep = {r.role_slug: r for r in membership.roles if r.role_slug in slugs}
    for old in list(membership.roles):
        if old.role_slug not in keep:
            membership.roles.remove(old)
    for position, slug in enumerate(slugs):
        row = keep.get(slug)
        if row is None:
            role = org.by_slug[slug]
            membership.roles.append(
                MembershipRole(role_id=role.id, role_slug=slug, position=position)
            )
        else:
            row.position = position
    membership.roles.sort(key=lambda r: r.position)
