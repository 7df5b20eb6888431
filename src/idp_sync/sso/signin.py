"""SSO groups -> roles (DESIGN §3 source 2) and the worker's side of a sign-in (DESIGN §4).

* ``load_sso_inputs`` is the resolver's SSO source, registered in
  ``memberships.recompute.IDP_LOADERS``: a membership gets the groups of the last sign-in
  of its user's profile in that organization, through a connection that has mappings.
* ``resolve_profile`` resolves a profile's role(s) at sign-in, in the ACS request.
* ``process_login`` (the ``idp_sync.sso.sign_in`` task) creates the user and membership
  just in time, recomputes the membership and writes the events; it reads current state
  only, so a duplicated or late delivery converges on the same result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import and_, delete, select
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.events.services import record_event
from idp_sync.memberships import serializers as membership_ser
from idp_sync.memberships.models import OrganizationMembership as OM
from idp_sync.memberships.recompute import (
    IDP_LOADERS,
    RoleCatalog,
    idp_inputs,
    recompute,
)
from idp_sync.memberships.services import create_membership, lock_membership
from idp_sync.rbac.resolver import GroupMapping, IdpInput, MembershipInput, resolve
from idp_sync.sso import serializers as ser
from idp_sync.sso.models import (
    SamlAssertionReplay,
    SamlAuthnRequest,
    SsoAccessToken,
    SsoAuthorizationCode,
    SsoGroupRoleMapping,
    SsoLoginEvent,
    SsoProfile,
)
from idp_sync.users.models import User
from idp_sync.users.services import create_user

REASON = "sso_sign_in"


def mappings_of(session: Session, connection_ids: set[str]) -> dict[str, tuple[GroupMapping, ...]]:
    rows = session.scalars(
        select(SsoGroupRoleMapping).where(SsoGroupRoleMapping.connection_id.in_(connection_ids))
    )
    found: dict[str, list[GroupMapping]] = defaultdict(list)
    for m in rows:
        found[m.connection_id].append(GroupMapping(m.id, m.group, m.role_slug))
    return {cid: tuple(items) for cid, items in found.items()}


def load_sso_inputs(
    session: Session, membership_ids: Sequence[str]
) -> dict[str, tuple[IdpInput | None, IdpInput | None]]:
    """For memberships, the SSO input of the latest sign-in of a connection with mappings."""
    rows = session.execute(
        select(OM.id, SsoProfile.connection_id, SsoProfile.groups)
        .join(
            SsoProfile,
            and_(
                SsoProfile.user_id == OM.user_id,
                SsoProfile.organization_id == OM.organization_id,
            ),
        )
        .where(OM.id.in_(membership_ids))
        .order_by(SsoProfile.last_sign_in_at.desc(), SsoProfile.id.desc())
    ).all()
    if not rows:
        return {}
    mappings = mappings_of(session, {connection_id for _, connection_id, _ in rows})
    found: dict[str, tuple[IdpInput | None, IdpInput | None]] = {}
    for membership_id, connection_id, groups in rows:
        if membership_id not in found and mappings.get(connection_id):
            sso = IdpInput(connection_id, frozenset(groups or ()), mappings[connection_id])
            found[membership_id] = (None, sso)
    return found


if load_sso_inputs not in IDP_LOADERS:
    IDP_LOADERS.append(load_sso_inputs)


def resolve_profile(session: Session, profile: SsoProfile, catalog: RoleCatalog) -> list[str]:
    """The role(s) the profile's membership will have: the membership's own inputs (API
    roles, directory) when it exists, with this sign-in's groups as the SSO source."""
    mappings = mappings_of(session, {profile.connection_id}).get(profile.connection_id, ())
    sso = IdpInput(profile.connection_id, frozenset(profile.groups), mappings)
    membership = _membership_of(session, profile)
    api_roles: tuple[str, ...] = ()
    directory = None
    if membership is not None:
        api_roles = tuple(r.role_slug for r in membership.api_roles)
        directory = idp_inputs(session, [membership.id]).get(membership.id, (None, None))[0]
    member = MembershipInput(api_roles=api_roles, directory=directory, sso=sso)
    return list(resolve(catalog.for_org(profile.organization_id).state, member).roles)


def _membership_of(session: Session, profile: SsoProfile) -> OM | None:
    if profile.user_id is None:
        user_id = session.scalar(select(User.id).where(User.email == profile.email))
    else:
        user_id = profile.user_id
    if user_id is None:
        return None
    return session.scalar(
        select(OM).where(OM.organization_id == profile.organization_id, OM.user_id == user_id)
    )


def process_login(session: Session, login_id: str) -> str:
    """Fold the sign-in ``login_id`` into its membership; ``skipped`` if done before."""
    login = session.get(SsoLoginEvent, login_id, with_for_update=True)
    if login is None or login.processed_at is not None:
        return "skipped"
    profile = session.get(SsoProfile, login.profile_id)
    if profile is None:
        login.processed_at = utcnow()
        return "skipped"
    user = _user_for(session, profile)
    profile.user_id = user.id
    user.last_sign_in_at = login.created_at
    session.flush()
    membership = _membership_of(session, profile)
    if membership is None:
        membership = create_membership(
            session, organization_id=profile.organization_id, user_id=user.id, role_slugs=None
        )
    else:
        membership = lock_membership(session, membership.id)
        if recompute(session, [membership], RoleCatalog(session), reason=REASON):
            membership.updated_at = utcnow()
            session.flush()
            record_event(
                session,
                "organization_membership.updated",
                membership_ser.event_data(membership),
                organization_id=membership.organization_id,
            )
    profile.membership_id = membership.id
    login.processed_at = utcnow()
    data = ser.sso_event(
        status="succeeded",
        organization_id=profile.organization_id,
        connection_id=profile.connection_id,
        ip_address=login.ip_address,
        user_agent=login.user_agent,
        user_id=user.id,
        email=profile.email,
    )
    if not profile.groups_known:  # Entra groups overage: the last known groups were kept
        data["groups_overage"] = True
    record_event(
        session, "authentication.sso_succeeded", data, organization_id=profile.organization_id
    )
    return "done"


def _user_for(session: Session, profile: SsoProfile) -> User:
    """The profile's user: linked before, else the user with its email, else a new one."""
    if profile.user_id is not None:
        user = session.get(User, profile.user_id)
        if user is not None:
            return user
    user = session.scalar(select(User).where(User.email == profile.email))
    if user is not None:
        return user
    return create_user(
        session,
        {
            "email": profile.email,
            "first_name": profile.first_name,
            "last_name": profile.last_name,
            "name": profile.name,
            "email_verified": True,
        },
    )


def purge_expired(session: Session) -> int:
    """Forget what can no longer be used: replay rows past NotOnOrAfter + skew (the time
    check refuses such assertions anyway), unanswered AuthnRequests, codes and tokens."""
    now = utcnow()
    removed = 0
    for table, column in (
        (SamlAssertionReplay, SamlAssertionReplay.not_on_or_after),
        (SamlAuthnRequest, SamlAuthnRequest.expires_at),
        (SsoAuthorizationCode, SsoAuthorizationCode.expires_at),
        (SsoAccessToken, SsoAccessToken.expires_at),
    ):
        result = session.execute(delete(table).where(column < now))
        removed += getattr(result, "rowcount", 0) or 0
    return removed
