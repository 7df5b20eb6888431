"""SSO groups -> roles (DESIGN §3 source 2) and the worker's side of a sign-in (DESIGN §4).

* ``load_sso_inputs`` is the resolver's SSO source, registered in
  ``memberships.recompute.IDP_LOADERS``: a membership gets the groups of the last sign-in
  of its user's profile in that organization, through a connection that has mappings.
* ``resolve_profiles`` resolves profiles' role(s) as a sign-in does (``flow.accept``
  does it for one profile with its own statements); a role deletion re-resolves with it.
* ``explain_sso_source`` is the SSO entry of a membership's role explanation: which
  profile's groups were used, and whether they are the last known ones (Entra overage).
* ``process_login`` (run by the ``idp_sync.sso.sign_ins`` task for each pending sign-in,
  taken by ``take_pending_login``) creates the user and membership just in time,
  recomputes the membership and writes the events; it reads current state only, so a
  duplicated or late run converges on the same result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, delete, or_, select
from sqlalchemy.orm import Session

from idp_sync.db import id_rows, utcnow
from idp_sync.events.services import record_event
from idp_sync.memberships import serializers as membership_ser
from idp_sync.memberships.models import MembershipApiRole
from idp_sync.memberships.models import OrganizationMembership as OM
from idp_sync.memberships.recompute import IDP_LOADERS, RoleCatalog, recompute
from idp_sync.memberships.services import create_membership, lock_membership
from idp_sync.rbac.resolver import GroupMapping, IdpInput, MembershipInput, RoleState, resolve
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
from idp_sync.wire import iso

REASON = "sso_sign_in"


def mappings_of(session: Session, connection_ids: set[str]) -> dict[str, tuple[GroupMapping, ...]]:
    m = SsoGroupRoleMapping
    rows = session.execute(
        select(m.connection_id, m.id, m.group, m.role_slug).where(
            m.connection_id.in_(connection_ids)
        )
    )
    found: dict[str, list[GroupMapping]] = defaultdict(list)
    for connection_id, mapping_id, group, role_slug in rows:
        found[connection_id].append(GroupMapping(mapping_id, group, role_slug))
    return {cid: tuple(items) for cid, items in found.items()}


def _latest_sign_ins(session: Session, membership_ids: Sequence[str], *columns: Any) -> Select[Any]:
    """``columns`` of the SSO profiles of memberships' users in their organizations, latest
    sign-in first: the SSO source is the first whose connection has mappings."""
    batch = id_rows(session, membership_ids, OM.id)
    return (
        select(OM.id, SsoProfile.connection_id, *columns)
        .select_from(batch)
        .join(OM, OM.id == batch.c.id)
        .join(
            SsoProfile,
            and_(
                SsoProfile.user_id == OM.user_id,
                SsoProfile.organization_id == OM.organization_id,
            ),
        )
        .order_by(SsoProfile.last_sign_in_at.desc(), SsoProfile.id.desc())
    )


def load_sso_inputs(
    session: Session, membership_ids: Sequence[str]
) -> dict[str, tuple[IdpInput | None, IdpInput | None]]:
    """For memberships, the SSO input of the latest sign-in of a connection with mappings."""
    rows = session.execute(_latest_sign_ins(session, membership_ids, SsoProfile.groups)).all()
    if not rows:
        return {}
    mappings = mappings_of(session, {connection_id for _, connection_id, _ in rows})
    found: dict[str, tuple[IdpInput | None, IdpInput | None]] = {}
    for membership_id, connection_id, groups in rows:
        if membership_id not in found and mappings.get(connection_id):
            sso = IdpInput(connection_id, frozenset(groups or ()), mappings[connection_id])
            found[membership_id] = (None, sso)
    return found


def explain_sso_source(session: Session, membership_id: str) -> dict[str, Any] | None:
    """The SSO source of a role explanation: the profile whose groups the resolver reads
    (as ``load_sso_inputs`` picks it), and, after an Entra groups overage sign-in, that
    the groups are the last known ones and since when. None if no SSO source applies."""
    rows = session.execute(_latest_sign_ins(session, [membership_id], SsoProfile)).all()
    mappings = mappings_of(session, {connection_id for _, connection_id, _ in rows})
    profile = next((p for _, cid, p in rows if mappings.get(cid)), None)
    if profile is None:
        return None
    entry: dict[str, Any] = {
        "connection_id": profile.connection_id,
        "groups": list(profile.groups or ()),
        "groups_overage": not profile.groups_known,
        "groups_received_at": iso(profile.groups_received_at),
        "last_sign_in_at": iso(profile.last_sign_in_at),
    }
    if not profile.groups_known:
        since = iso(profile.groups_received_at) or "an earlier sign-in"
        entry["note"] = (
            f"At the last sign-in ({iso(profile.last_sign_in_at)}) the IdP sent the groups "
            "overage claim instead of the groups, so the user's current groups are unknown: "
            f"the roles come from the last known groups, received at {since}."
        )
    return entry


if load_sso_inputs not in IDP_LOADERS:
    IDP_LOADERS.append(load_sso_inputs)


def resolve_profile(session: Session, profile: SsoProfile, catalog: RoleCatalog) -> list[str]:
    """The role(s) the profile's membership will have: the membership's own inputs (API
    roles, directory) when it exists, with this sign-in's groups as the SSO source."""
    return resolve_profiles(session, [profile], catalog)[0]


def resolve_profiles(
    session: Session, profiles: Sequence[SsoProfile], catalog: RoleCatalog
) -> list[list[str]]:
    """``resolve_profile`` for many profiles with one query per kind of input, whatever
    their number (a role deletion re-resolves every profile that held the role)."""
    if not profiles:
        return []
    mappings = mappings_of(session, {p.connection_id for p in profiles})
    memberships = _memberships_inputs(session, profiles)
    directory = directory_inputs(session, [mid for mid, _ in memberships.values()])
    resolved = []
    for profile in profiles:
        membership_id, api_roles = memberships.get(profile.id, (None, ()))
        resolved.append(
            sso_roles(
                catalog.for_org(profile.organization_id).state,
                profile.connection_id,
                profile.groups,
                mappings.get(profile.connection_id, ()),
                api_roles,
                directory.get(membership_id) if membership_id else None,
            )
        )
    return resolved


def sso_roles(
    state: RoleState,
    connection_id: str,
    groups: Sequence[str],
    mappings: tuple[GroupMapping, ...],
    api_roles: tuple[str, ...],
    directory: IdpInput | None,
) -> list[str]:
    """The role(s) a profile's membership gets at a sign-in through ``connection_id``
    with ``groups``: its own inputs (API roles, directory) with those groups as the SSO
    source. The ACS (``flow``) and a role deletion's re-resolution both resolve here."""
    member = MembershipInput(
        api_roles=api_roles,
        directory=directory,
        sso=IdpInput(connection_id, frozenset(groups), mappings),
    )
    return list(resolve(state, member).roles)


def _memberships_inputs(
    session: Session, profiles: Sequence[SsoProfile]
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Profile id -> the id and API roles of its membership, for those that have one, in
    one query (this runs in every ACS request): the membership of the profile's user in
    the profile's organization, else of the user with the profile's email."""
    user_ids = {p.user_id for p in profiles if p.user_id is not None}
    emails = {p.email for p in profiles if p.user_id is None}
    rows = session.execute(
        select(OM.id, OM.organization_id, OM.user_id, User.email, MembershipApiRole.role_slug)
        .join(User, User.id == OM.user_id)
        .outerjoin(MembershipApiRole, MembershipApiRole.membership_id == OM.id)
        .where(
            OM.organization_id.in_({p.organization_id for p in profiles}),
            or_(OM.user_id.in_(user_ids), User.email.in_(emails)),
        )
        .order_by(OM.id, MembershipApiRole.position)
    ).all()
    found: dict[tuple[str, str, str], tuple[str, list[str]]] = {}
    for membership_id, organization_id, user_id, email, slug in rows:
        entry = found.setdefault(("user", organization_id, user_id), (membership_id, []))
        found.setdefault(("email", organization_id, email), entry)
        if slug is not None:
            entry[1].append(slug)
    inputs = {}
    for p in profiles:
        key = (
            ("user", p.organization_id, p.user_id)
            if p.user_id
            else ("email", p.organization_id, p.email)
        )
        if key in found:
            membership_id, slugs = found[key]
            inputs[p.id] = (membership_id, tuple(slugs))
    return inputs


def directory_inputs(session: Session, membership_ids: list[str]) -> dict[str, IdpInput]:
    """The memberships' directory inputs, as ``idp_inputs`` merges them, without running
    this module's own loader: a stored SSO input gives way to the profile's groups."""
    found: dict[str, IdpInput] = {}
    if not membership_ids:
        return found
    for loader in IDP_LOADERS:
        if loader is not load_sso_inputs:
            for membership_id, (directory, _) in loader(session, membership_ids).items():
                if directory is not None:
                    found[membership_id] = directory
    return found


def take_pending_login(session: Session) -> tuple[str, str | None] | None:
    """The oldest sign-in not folded in yet, locked for this transaction, with its
    correlation id; rows another transaction holds are skipped, so workers folding at once
    take different ones (SQLite has one writer at a time anyway)."""
    row = session.execute(
        select(SsoLoginEvent.id, SsoLoginEvent.correlation_id)
        .where(SsoLoginEvent.processed_at.is_(None))
        .order_by(SsoLoginEvent.processed_at, SsoLoginEvent.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    return (row.id, row.correlation_id) if row is not None else None


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
    found = _memberships_inputs(session, [profile]).get(profile.id)
    if found is None:
        membership = create_membership(
            session, organization_id=profile.organization_id, user_id=user.id, role_slugs=None
        )
    else:
        membership = lock_membership(session, found[0])
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
