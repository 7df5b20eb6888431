"""The worker's side of Directory Sync: directory state -> organization memberships.

``process_pending`` folds every pending ``DirectoryEvent`` of a directory into one
recompute per affected directory user (coalescing: a burst of events about one user
costs one recompute; the tasks of events already folded in find nothing to do).
``sync_user`` derives the membership from current state only - the directory user, its
groups, the mappings - so duplicated or reordered deliveries converge on the same result.

``load_directory_inputs`` is the resolver's directory source (DESIGN §3), registered in
``memberships.recompute.IDP_LOADERS`` so that every recompute (API, jobs, this worker)
sees directory groups.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp_sync.db import id_rows, is_postgres, utcnow
from idp_sync.directory.models import (
    DirectoryEvent,
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    GroupRoleMapping,
)
from idp_sync.errors import Conflict, IdpSyncError
from idp_sync.events.services import record_event
from idp_sync.ids import new_id
from idp_sync.memberships import serializers as membership_ser
from idp_sync.memberships.models import OrganizationMembership as OM
from idp_sync.memberships.recompute import IDP_LOADERS, RoleCatalog, recompute
from idp_sync.rbac.resolver import GroupMapping, IdpInput
from idp_sync.users.models import User
from idp_sync.users.services import create_user

log = logging.getLogger(__name__)
EVENT_BATCH = 500
USER_BUDGET = 2000  # directory users synced in one transaction
REASON = "directory_sync"


def process_pending(session: Session, event_id: str) -> int | None:
    """Fold ``event_id`` and the other pending events of its directory; None if done before.

    Returns how many directory users were synced. On PostgreSQL, ``SKIP LOCKED`` lets
    concurrent workers take disjoint events; memberships are locked row by row.
    """
    event = session.get(DirectoryEvent, event_id)
    if event is None or event.processed_at is not None:
        return None
    query = (
        select(DirectoryEvent)
        .where(
            DirectoryEvent.directory_id == event.directory_id,
            DirectoryEvent.processed_at.is_(None),
        )
        .order_by(DirectoryEvent.id)
        .limit(EVENT_BATCH)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    events = within_budget(list(session.scalars(query)), event_id)
    user_ids = affected_users(session, events)
    catalog = RoleCatalog(session)
    # Locked in id order, re-read: two tasks folding different events about one user (its
    # creation, and a group push naming it) take turns, and the second sees the first's
    # link to a user instead of creating that user again. NO KEY UPDATE: SCIM requests
    # adding these users to groups (foreign-key checks take KEY SHARE) do not wait on it.
    directory_users = session.scalars(
        select(DirectoryUser)
        .where(DirectoryUser.id.in_(user_ids))
        .order_by(DirectoryUser.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).all()
    sync_users(session, directory_users, catalog)
    now = utcnow()
    for pending in events:
        pending.processed_at = now
    return len(user_ids)


class PendingEvent(NamedTuple):
    id: str
    directory_id: str
    correlation_id: str | None


def take_pending_event(
    session: Session, skip_directories: Sequence[str] = ()
) -> PendingEvent | None:
    """The oldest directory event not folded in yet (of a directory not in
    ``skip_directories``), locked for this transaction. Events another transaction holds
    are skipped, so workers draining at once take different ones; ``process_pending``
    then folds in its directory's other pending events."""
    query = (
        select(DirectoryEvent.id, DirectoryEvent.directory_id, DirectoryEvent.correlation_id)
        .where(DirectoryEvent.processed_at.is_(None))
        .order_by(DirectoryEvent.id)
        .limit(1)
    )
    if skip_directories:
        query = query.where(DirectoryEvent.directory_id.not_in(skip_directories))
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    row = session.execute(query).first()
    return PendingEvent(*row) if row is not None else None


def within_budget(events: list[DirectoryEvent], event_id: str) -> list[DirectoryEvent]:
    """``event_id`` first, then the others in order while they name at most ``USER_BUDGET``
    users in all: one transaction stays bounded however large a member PATCH was (the
    mirror splits large ones into events of ``EVENT_CHUNK`` users). The rest stay pending
    for their own tasks."""
    first = [e for e in events if e.id == event_id]
    chosen, count = list(first), sum(len(e.user_ids or []) for e in first)
    for event in events:
        size = len(event.user_ids or [])
        if event.id == event_id or (chosen and count + size > USER_BUDGET):
            continue
        chosen.append(event)
        count += size
    return chosen


def affected_users(session: Session, events: Sequence[DirectoryEvent]) -> list[str]:
    """The directory users named by ``events``, plus the members of groups they name."""
    ids: set[str] = set()
    group_ids: set[str] = set()
    for event in events:
        ids.update(event.user_ids or [])
        if event.group_id and not event.user_ids:
            group_ids.add(event.group_id)
    if group_ids:
        members = select(DirectoryGroupMember.user_id).where(
            DirectoryGroupMember.group_id.in_(group_ids)
        )
        ids.update(session.scalars(members))
    return sorted(ids)


def sync_user(session: Session, directory_user: DirectoryUser, catalog: RoleCatalog) -> None:
    """Make the linked membership match the directory user's current state."""
    sync_users(session, [directory_user], catalog)


def sync_users(
    session: Session, directory_users: Sequence[DirectoryUser], catalog: RoleCatalog
) -> None:
    """Make the linked memberships match the directory users' current state.

    Set-based where it counts: the batch's memberships are locked in one query (id
    order, so concurrent workers lock alike) and recomputed in one call, so a task that
    folded many events costs little more than one that folded a single event."""
    linked = [du for du in directory_users if _linked(session, du)]
    found = _lock_memberships(session, linked)
    updates: dict[str, tuple[OM, bool]] = {}
    for directory_user in linked:
        # The membership is live if any directory user linked to it is (two directories
        # of one organization, or two entries with one email): state decides, not events.
        live = _live(directory_user) or _any_live_link(session, directory_user)
        key = (directory_user.organization_id, directory_user.user_id or "")
        membership = found.get(key)
        if membership is None:
            if live:
                found[key] = _create_membership(session, directory_user, catalog)
            continue
        was_live = updates.get(membership.id, (membership, False))[1]
        updates[membership.id] = (membership, live or was_live)
    _update_memberships(session, list(updates.values()), catalog)


def _live(directory_user: DirectoryUser) -> bool:
    return directory_user.deleted_at is None and directory_user.active


def _linked(session: Session, directory_user: DirectoryUser) -> bool:
    """Link a live directory user to its user (by email) if it has none yet."""
    if directory_user.user_id is not None:
        return True
    if not _live(directory_user):
        return False
    user = _link_user(session, directory_user)
    if user is None:
        return False
    directory_user.user_id = user.id
    return True


def _lock_memberships(
    session: Session, directory_users: Sequence[DirectoryUser]
) -> dict[tuple[str, str], OM]:
    """The existing memberships of ``directory_users``, locked, by (organization, user)."""
    by_org: dict[str, set[str]] = defaultdict(set)
    for du in directory_users:
        by_org[du.organization_id].add(du.user_id or "")
    if not by_org:
        return {}
    rows = session.scalars(
        select(OM)
        .where(
            or_(
                *(
                    and_(OM.organization_id == org, OM.user_id.in_(sorted(users)))
                    for org, users in by_org.items()
                )
            )
        )
        .order_by(OM.id)
        .with_for_update(of=OM)
        .execution_options(populate_existing=True)
    ).all()
    return {(m.organization_id, m.user_id): m for m in rows}


def _any_live_link(session: Session, directory_user: DirectoryUser) -> bool:
    other = session.scalar(
        select(DirectoryUser.id)
        .where(
            DirectoryUser.organization_id == directory_user.organization_id,
            DirectoryUser.user_id == directory_user.user_id,
            DirectoryUser.deleted_at.is_(None),
            DirectoryUser.active.is_(True),
        )
        .limit(1)
    )
    return other is not None


def _link_user(session: Session, directory_user: DirectoryUser) -> User | None:
    """The user with the directory user's email (DESIGN §2: linked by email), or a new one."""
    email = directory_user.email
    if not email:
        log.info("directory user without email: no membership", extra={"id": directory_user.id})
        return None
    existing = session.scalar(select(User).where(User.email == email.lower()))
    if existing is not None:
        return existing
    fields = {
        "email": email,
        "first_name": directory_user.first_name,
        "last_name": directory_user.last_name,
    }
    try:
        with session.begin_nested():  # another directory may link the same email meanwhile
            return create_user(session, fields)
    except (IntegrityError, Conflict):  # it did: link to that user
        raced = session.scalar(select(User).where(User.email == email.lower()))
        if raced is not None:
            return raced
        log.warning("directory user not linked", extra={"id": directory_user.id})
        return None
    except IdpSyncError as exc:  # e.g. an email the user service refuses
        log.warning("directory user not linked", extra={"id": directory_user.id, "error": str(exc)})
        return None


def _create_membership(session: Session, directory_user: DirectoryUser, catalog: RoleCatalog) -> OM:
    now = utcnow()
    membership = OM(
        id=new_id("membership"),
        organization_id=directory_user.organization_id,
        user_id=directory_user.user_id,
        status="active",
        directory_managed=True,
        created_at=now,
        updated_at=now,
        roles=[],
        api_roles=[],
        custom_attributes={},
        provenance={},
    )
    session.add(membership)
    session.flush()
    recompute(session, [membership], catalog, reason=REASON)
    session.flush()
    record_event(
        session,
        "organization_membership.created",
        membership_ser.event_data(membership),
        organization_id=membership.organization_id,
    )
    return membership


def _update_memberships(
    session: Session, updates: Sequence[tuple[OM, bool]], catalog: RoleCatalog
) -> None:
    """Status from liveness, roles from the resolver (one batch); an event per change."""
    changed: set[str] = set()
    for membership, live in updates:
        if live and (membership.status != "active" or not membership.directory_managed):
            membership.status, membership.directory_managed = "active", True
            changed.add(membership.id)
        elif not live and membership.directory_managed and membership.status == "active":
            membership.status = "inactive"  # access removed, history kept
            changed.add(membership.id)
    memberships = [membership for membership, _ in updates]
    if memberships:
        changed.update(m.id for m in recompute(session, memberships, catalog, reason=REASON))
    written = [m for m in memberships if m.id in changed]
    if not written:
        return
    now = utcnow()
    for membership in written:
        membership.updated_at = now
    session.flush()
    for membership in written:
        record_event(
            session,
            "organization_membership.updated",
            membership_ser.event_data(membership),
            organization_id=membership.organization_id,
        )


# --- the resolver's directory source -----------------------------------------------------


def load_directory_inputs(
    session: Session, membership_ids: Sequence[str]
) -> dict[str, tuple[IdpInput | None, IdpInput | None]]:
    """For memberships linked to a live directory user: its groups and its directory's mappings.

    Group keys are the group id and ``name:`` + its lower-cased displayName, which is how
    mappings name groups (by id, or by name before the first push).
    """
    batch = id_rows(session, membership_ids, OM.id)
    links = session.execute(
        select(OM.id, DirectoryUser.id, DirectoryUser.directory_id)
        .select_from(batch)
        .join(OM, OM.id == batch.c.id)
        .join(
            DirectoryUser,
            and_(
                DirectoryUser.user_id == OM.user_id,
                DirectoryUser.organization_id == OM.organization_id,
            ),
        )
        .where(DirectoryUser.deleted_at.is_(None), DirectoryUser.active.is_(True))
        .order_by(DirectoryUser.id)
    ).all()
    chosen: dict[str, tuple[str, str]] = {}
    for membership_id, user_id, directory_id in links:
        chosen.setdefault(membership_id, (user_id, directory_id))
    if not chosen:
        return {}
    groups = _groups_of(session, [user_id for user_id, _ in chosen.values()])
    mappings = _mappings_of(session, {directory_id for _, directory_id in chosen.values()})
    return {
        membership_id: (
            IdpInput(
                directory_id, frozenset(groups.get(user_id, ())), mappings.get(directory_id, ())
            ),
            None,
        )
        for membership_id, (user_id, directory_id) in chosen.items()
    }


def _groups_of(session: Session, user_ids: Sequence[str]) -> dict[str, set[str]]:
    rows = session.execute(
        select(DirectoryGroupMember.user_id, DirectoryGroup.id, DirectoryGroup.display_name)
        .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
        .where(DirectoryGroupMember.user_id.in_(user_ids), DirectoryGroup.deleted_at.is_(None))
    ).all()
    keys: dict[str, set[str]] = defaultdict(set)
    for user_id, group_id, name in rows:
        keys[user_id].update((group_id, "name:" + name.lower()))
    return keys


def _mappings_of(session: Session, directory_ids: set[str]) -> dict[str, tuple[GroupMapping, ...]]:
    rows = session.scalars(
        select(GroupRoleMapping).where(GroupRoleMapping.directory_id.in_(directory_ids))
    )
    found: dict[str, list[GroupMapping]] = defaultdict(list)
    for m in rows:
        found[m.directory_id].append(GroupMapping(m.id, m.group_key, m.role_slug))
    return {directory_id: tuple(items) for directory_id, items in found.items()}


if load_directory_inputs not in IDP_LOADERS:
    IDP_LOADERS.append(load_directory_inputs)
