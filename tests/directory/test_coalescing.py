"""Issue 4 point 5: recomputes are coalesced, idempotent and insensitive to delivery order.

The task body (``sync.process_pending``) is called directly, in a rolled-back transaction:
the worker is not the point here, the state it converges to is.
"""

from __future__ import annotations

from dsync_helpers import mapped_directory
from sqlalchemy import func, select

from conftest import unique
from idp_sync.directory import mirror, sync
from idp_sync.directory.models import DirectoryEvent
from idp_sync.directory.scim.patch import PatchOp
from idp_sync.events.models import Event
from idp_sync.memberships.models import MembershipAudit, OrganizationMembership


def _setup(session):  # type: ignore[no-untyped-def]
    org, directory, group, role = mapped_directory(session)
    email = f"{unique('u')}@example.com"
    user = mirror.create_user(
        session, directory, {"userName": email, "emails": [{"value": email, "primary": True}]}
    )
    return org, directory, group, user, role


def _burst(session, directory, group, user):  # type: ignore[no-untyped-def]
    """Ten changes about one user: renamed, added to the group, removed, added again."""
    for i in range(3):
        mirror.patch_user(session, directory, user, [PatchOp("replace", "displayName", f"n{i}")])
    add = [PatchOp("add", "members", [{"value": user.id}])]
    remove = [PatchOp("remove", f'members[value eq "{user.id}"]')]
    for ops in (add, remove, add, remove, add):
        mirror.patch_group(session, directory, group, ops)
    session.flush()
    return list(
        session.scalars(
            select(DirectoryEvent.id)
            .where(DirectoryEvent.directory_id == directory.id)
            .order_by(DirectoryEvent.id)
        )
    )


def _state(session, org_id):  # type: ignore[no-untyped-def]
    memberships = session.scalars(
        select(OrganizationMembership).where(OrganizationMembership.organization_id == org_id)
    ).all()
    return [(m.user_id, m.status, [r.role_slug for r in m.roles]) for m in memberships]


def test_a_burst_costs_one_recompute(session) -> None:
    org, directory, group, user, role = _setup(session)
    event_ids = _burst(session, directory, group, user)
    assert len(event_ids) >= 9
    assert sync.process_pending(session, event_ids[-1]) == 1  # one user, once
    assert all(sync.process_pending(session, e) is None for e in event_ids)  # already folded
    [(_, status, roles)] = _state(session, org.id)
    assert (status, roles) == ("active", [role.slug])
    audits = session.scalar(
        select(func.count())
        .select_from(MembershipAudit)
        .where(MembershipAudit.organization_id == org.id)
    )
    assert audits == 1  # created straight into the mapped role: one write
    created = session.scalar(
        select(func.count())
        .select_from(Event)
        .where(Event.organization_id == org.id, Event.event == "organization_membership.created")
    )
    assert created == 1


def test_order_and_duplicates_do_not_change_the_result(session) -> None:
    org, directory, group, user, _ = _setup(session)
    first = _burst(session, directory, group, user)
    sync.process_pending(session, first[0])
    settled = _state(session, org.id)
    # Redeliver every event, newest first, as a broker might after a crash.
    for event_id in reversed(first):
        session.execute(
            DirectoryEvent.__table__.update()
            .where(DirectoryEvent.id == event_id)
            .values(processed_at=None)
        )
    for event_id in reversed(first):
        sync.process_pending(session, event_id)
        sync.process_pending(session, event_id)
    assert _state(session, org.id) == settled
    updated = session.scalar(
        select(func.count())
        .select_from(Event)
        .where(Event.organization_id == org.id, Event.event == "organization_membership.updated")
    )
    assert updated == 0  # nothing changed, so nothing was announced


def test_deactivation_then_reactivation_by_state_only(session) -> None:
    org, directory, group, user, role = _setup(session)
    mirror.patch_group(session, directory, group, [PatchOp("add", "members", [{"value": user.id}])])
    mirror.patch_user(session, directory, user, [PatchOp("replace", None, {"active": False})])
    events = list(session.scalars(select(DirectoryEvent.id).order_by(DirectoryEvent.id)))
    sync.process_pending(session, events[-1])
    # The user is inactive now: no membership is created for them.
    assert _state(session, org.id) == []
    mirror.patch_user(session, directory, user, [PatchOp("replace", "active", True)])
    latest = session.scalar(select(func.max(DirectoryEvent.id)))
    sync.process_pending(session, latest)
    [(_, status, roles)] = _state(session, org.id)
    assert (status, roles) == ("active", [role.slug])


def test_a_membership_stays_active_while_any_linked_directory_user_is(session) -> None:
    org, directory, _group, user, _role = _setup(session)
    email = user.email
    twin = mirror.create_user(
        session,
        directory,
        {"userName": "twin-" + email, "emails": [{"value": email.upper(), "primary": True}]},
    )
    latest = session.scalar(select(func.max(DirectoryEvent.id)))
    sync.process_pending(session, latest)
    mirror.patch_user(session, directory, twin, [PatchOp("replace", "active", False)])
    sync.process_pending(session, session.scalar(select(func.max(DirectoryEvent.id))))
    [(_, status, _roles)] = _state(session, org.id)
    assert status == "active"  # the other directory user is still active
    mirror.delete_user(session, directory, user)
    sync.process_pending(session, session.scalar(select(func.max(DirectoryEvent.id))))
    [(_, status, _roles)] = _state(session, org.id)
    assert status == "inactive"


def test_large_member_changes_are_synced_in_bounded_transactions(session, monkeypatch) -> None:
    monkeypatch.setattr(mirror, "EVENT_CHUNK", 4)
    monkeypatch.setattr(sync, "USER_BUDGET", 6)
    _org, directory, group, _user, _role = _setup(session)
    users = [
        mirror.create_user(session, directory, {"userName": f"{unique('b')}@example.com"})
        for _ in range(9)
    ]
    for event_id in session.scalars(select(DirectoryEvent.id).order_by(DirectoryEvent.id)):
        sync.process_pending(session, event_id)
    value = [{"value": u.id} for u in users]
    mirror.patch_group(session, directory, group, [PatchOp("add", "members", value)])
    chunks = list(
        session.scalars(
            select(DirectoryEvent)
            .where(DirectoryEvent.processed_at.is_(None))
            .order_by(DirectoryEvent.id)
        )
    )
    assert [len(e.user_ids) for e in chunks] == [4, 4, 1]
    assert sync.process_pending(session, chunks[1].id) == 5  # its own 4, then 1 more fits
    assert chunks[0].processed_at is None  # left for its own task
    assert sync.process_pending(session, chunks[0].id) == 4
    assert sync.process_pending(session, chunks[2].id) is None
