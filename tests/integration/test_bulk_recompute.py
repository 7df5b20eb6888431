"""The set-based batch recompute (memberships.bulk) agrees with the ORM one (recompute)."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from idp_sync.events.models import Event
from idp_sync.memberships import bulk, recompute
from idp_sync.memberships.models import MembershipAudit, OrganizationMembership
from idp_sync.memberships.serializers import event_data
from idp_sync.memberships.services import create_membership
from idp_sync.organizations.services import create_organization
from idp_sync.rbac import services as rbac
from idp_sync.users.services import create_user
from idp_sync.wire import iso


def _state(session: Session, ids: list[str]) -> dict[str, tuple]:
    session.expire_all()
    rows = session.scalars(
        select(OrganizationMembership).where(OrganizationMembership.id.in_(ids))
    ).all()
    audits = session.scalars(
        select(MembershipAudit).where(MembershipAudit.membership_id.in_(ids))
    ).all()
    events = [
        e.data
        for e in session.scalars(
            select(Event).where(Event.event == "organization_membership.updated")
        )
        if e.data["id"] in ids
    ]
    return {
        m.id: (
            [r.role_slug for r in m.roles],
            m.role_source,
            m.uses_default,
            m.provenance,
            sorted(
                (a.before_roles, a.after_roles, a.source) for a in audits if a.membership_id == m.id
            ),
            # The whole event body, as serializers.event_data writes it for the row (the
            # change's time differs between the two runs: checked against the row's).
            [
                {**e, "updated_at": e["updated_at"] == iso(m.updated_at)}
                for e in events
                if e["id"] == m.id
            ],
            {**event_data(m), "updated_at": True},
        )
        for m in rows
    }


def test_bulk_and_orm_recompute_agree(session: Session) -> None:
    org = create_organization(
        session,
        name="Bulk",
        domains=[],
        external_id=None,
        metadata=None,
        allow_profiles_outside_organization=None,
    )
    doomed = rbac.create_environment_role(session, slug="bulk-doomed", name="D", description=None)
    kept = rbac.create_environment_role(session, slug="bulk-kept", name="K", description=None)
    ids = []
    for i, roles in enumerate([["bulk-doomed"], ["bulk-kept"], None, ["bulk-doomed"], None]):
        user = create_user(session, {"email": f"bulk{i}@example.com"})
        ids.append(
            create_membership(session, organization_id=org.id, user_id=user.id, role_slugs=roles).id
        )
    session.flush()
    # Event bodies carry custom attributes and millisecond times (truncated, as wire.iso).
    first = session.get(OrganizationMembership, ids[0])
    assert first is not None
    first.custom_attributes = {"team": "blue", "level": 3}
    first.created_at = first.created_at.replace(microsecond=999_999)
    session.flush()
    # The change: the doomed role starts being deleted and the default moves to `kept`.
    rbac.begin_role_deletion(session, doomed)
    rbac.environment_settings(session, for_update=True).default_role_slug = kept.slug
    session.flush()

    outcomes = []
    for engine_path in ("orm", "bulk"):
        savepoint = session.begin_nested()
        catalog = recompute.RoleCatalog(session)
        if engine_path == "orm":
            memberships = session.scalars(
                select(OrganizationMembership).where(OrganizationMembership.id.in_(ids))
            ).all()
            changed = recompute.recompute(session, memberships, catalog, reason="test")
            session.flush()
            from idp_sync.events.services import record_event

            for m in changed:
                record_event(
                    session,
                    "organization_membership.updated",
                    event_data(m),
                    organization_id=m.organization_id,
                )
            count = len(changed)
        else:
            count = bulk.recompute_ids(session, ids, catalog, reason="test")
        session.flush()
        outcomes.append((count, _state(session, ids)))
        savepoint.rollback()

    (orm_count, orm_state), (bulk_count, bulk_state) = outcomes
    assert orm_count == bulk_count == 4  # two doomed -> kept, two default member -> kept
    assert bulk_state == orm_state


def test_driver_errors_of_the_set_based_path_are_sqlalchemy_errors(session: Session) -> None:
    """The bulk path talks to psycopg directly; its errors must still be SQLAlchemy's, so
    that DbTask retries a deadlock or a timeout and the job resumes (never fails on one)."""
    import pytest
    from sqlalchemy import exc

    savepoint = session.begin_nested()
    session.execute(text("SET LOCAL statement_timeout = 1"))
    with pytest.raises(exc.OperationalError):
        bulk._pg_fetch(session, "SELECT pg_sleep(1)", {})
    savepoint.rollback()
    savepoint = session.begin_nested()
    with pytest.raises(exc.IntegrityError):
        bulk._pg_execute(
            session,
            "INSERT INTO organization_membership_roles (membership_id, role_id, role_slug) "
            "VALUES ('om_missing', 'role_missing', 'x')",
            {},
        )
    savepoint.rollback()
