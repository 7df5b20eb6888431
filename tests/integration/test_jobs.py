"""Recompute jobs at the service level: batches, progress, cursor, lease and resumption.

The job functions are called directly on the rolled-back ``session`` (STYLE "Tests":
call task functions directly where the worker is not the point). A "crash" is a batch
run inside a savepoint that is rolled back, as a worker killed mid-batch would leave it.

The database is shared with the e2e tests of the same run, which commit memberships:
assertions about counts use organization-scoped jobs, or only look at our organizations.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conftest import make_org, unique
from idp_sync.db import utcnow
from idp_sync.errors import Unprocessable
from idp_sync.events.models import Event, OutboxMessage
from idp_sync.jobs import services as jobs
from idp_sync.jobs.models import Job
from idp_sync.memberships import services as memberships
from idp_sync.memberships.models import MembershipAudit, OrganizationMembership
from idp_sync.memberships.recompute import RoleCatalog
from idp_sync.organizations.models import Organization
from idp_sync.rbac import configuration
from idp_sync.rbac import services as rbac
from idp_sync.rbac.models import Role
from idp_sync.users import services as users

LEASE = 60.0


# --- factories ------------------------------------------------------------------------


def make_env_role(session: Session) -> Role:
    return rbac.create_environment_role(session, slug=unique("role"), name="Role", description=None)


def make_members(
    session: Session, org: Organization, count: int, role_slugs: list[str] | None = None
) -> list[OrganizationMembership]:
    made = []
    for _ in range(count):
        user = users.create_user(session, {"email": f"{unique('u')}@example.com"})
        made.append(
            memberships.create_membership(
                session, organization_id=org.id, user_id=user.id, role_slugs=role_slugs
            )
        )
    return made


def roles_of(session: Session, members: list[OrganizationMembership]) -> dict[str, list[str]]:
    session.flush()
    session.expire_all()
    rows = session.scalars(
        select(OrganizationMembership).where(OrganizationMembership.id.in_([m.id for m in members]))
    )
    return {m.id: [r.role_slug for r in m.roles] for m in rows}


def audits(session: Session, job: Job) -> Counter[str]:
    reason = f"{job.type}:{job.id}"
    rows = session.scalars(select(MembershipAudit).where(MembershipAudit.reason == reason))
    return Counter(row.membership_id for row in rows)


def updated_events(session: Session, organization_id: str) -> Counter[str]:
    rows = session.scalars(
        select(Event).where(
            Event.event == "organization_membership.updated",
            Event.organization_id == organization_id,
        )
    )
    return Counter(e.data["id"] for e in rows)


def multiple_roles_org(session: Session, *names: str) -> tuple[Organization, list[Role]]:
    """Multiple-roles mode switched on (its job run), and an organization with a new
    organization role per name, in that order."""
    _, started = configuration.update_environment_settings(
        session, {"multiple_roles_enabled": True}, actor="test"
    )
    run_to_end(session, started[0], batch_size=50)
    org = make_org(session)
    roles = [
        rbac.create_organization_role(session, org.id, slug=None, name=name, description=None)
        for name in names
    ]
    return org, roles


def set_org_default(session: Session, org: Organization, slug: str | None) -> Job:
    _, started = configuration.update_organization_settings(
        session, org.id, {"default_role_slug": slug}, actor="test"
    )
    assert [j.type for j in started] == ["default_role_change"]
    return started[0]


def run_to_end(session: Session, job: Job, batch_size: int) -> int:
    """Claim the job and run its batches; returns how many batches did work."""
    assert jobs.claim(session, job.id, LEASE) is not None
    batches = 0
    while jobs.run_batch(session, job.id, batch_size=batch_size, lease_seconds=LEASE):
        batches += 1
    return batches


# --- tests ----------------------------------------------------------------------------


def test_job_is_committed_with_its_outbox_message(session: Session) -> None:
    org = make_org(session)
    make_members(session, org, 2)
    own = rbac.create_organization_role(session, org.id, slug=None, name="Lead", description=None)
    job = set_org_default(session, org, own.slug)
    session.flush()
    assert (job.state, job.total, job.done, job.changed) == ("pending", 2, 0, 0)
    messages = session.scalars(
        select(OutboxMessage).where(OutboxMessage.task_name == jobs.RUN_TASK)
    ).all()
    mine = [m for m in messages if m.kwargs == {"job_id": job.id}]
    assert len(mine) == 1
    assert (mine[0].queue, mine[0].completed_at) == ("bulk", None)


def test_default_change_runs_in_batches_with_progress_and_cursor(session: Session) -> None:
    org, elsewhere = make_org(session), make_org(session)
    pinned_role = make_env_role(session)
    defaults = make_members(session, org, 5)
    pinned = make_members(session, org, 1, [pinned_role.slug])
    untouched = make_members(session, elsewhere, 2)
    own = rbac.create_organization_role(session, org.id, slug=None, name="Lead", description=None)
    env_default = rbac.environment_settings(session).default_role_slug

    job = set_org_default(session, org, own.slug)
    session.flush()
    assert job.total == 5  # only the memberships on the default, only in this organization
    assert jobs.claim(session, job.id, LEASE) is job
    ordered = sorted(m.id for m in defaults)
    progress = []
    while jobs.run_batch(session, job.id, batch_size=2, lease_seconds=LEASE):
        progress.append((job.state, job.cursor, job.done, job.changed))
    assert progress == [
        ("running", ordered[1], 2, 2),
        ("running", ordered[3], 4, 4),
        ("running", ordered[4], 5, 5),
    ]
    assert (job.state, job.done, job.changed, job.total) == ("succeeded", 5, 5, 5)
    assert job.finished_at is not None and job.lease_expires_at is None

    roles = roles_of(session, defaults + pinned + untouched)
    assert {m.id: roles[m.id] for m in defaults} == {m.id: [own.slug] for m in defaults}
    assert roles[pinned[0].id] == [pinned_role.slug]
    assert {m.id: roles[m.id] for m in untouched} == {m.id: [env_default] for m in untouched}
    assert audits(session, job) == Counter({m.id: 1 for m in defaults})
    assert updated_events(session, org.id) == Counter({m.id: 1 for m in defaults})
    assert updated_events(session, elsewhere.id) == Counter()

    # Finished: running a batch again, or claiming again, changes nothing.
    assert jobs.run_batch(session, job.id, batch_size=2, lease_seconds=LEASE) is False
    assert jobs.claim(session, job.id, LEASE) is None
    session.flush()
    assert (job.state, job.done, job.changed) == ("succeeded", 5, 5)
    assert audits(session, job) == Counter({m.id: 1 for m in defaults})
    assert updated_events(session, org.id) == Counter({m.id: 1 for m in defaults})


def test_memberships_that_leave_the_default_are_kept_out_of_the_job(session: Session) -> None:
    org = make_org(session)
    role = make_env_role(session)
    members = make_members(session, org, 3)
    own = rbac.create_organization_role(session, org.id, slug=None, name="Lead", description=None)
    job = set_org_default(session, org, own.slug)
    # After the job was started, an API role is set on one of them: the job skips it.
    memberships.update_roles(session, members[0].id, [role.slug])
    run_to_end(session, job, batch_size=10)
    roles = roles_of(session, members)
    assert roles == {
        members[0].id: [role.slug],
        members[1].id: [own.slug],
        members[2].id: [own.slug],
    }
    assert job.changed == 2


def test_a_live_lease_keeps_a_second_claim_out(session: Session) -> None:
    org = make_org(session)
    make_members(session, org, 1)
    own = rbac.create_organization_role(session, org.id, slug=None, name="Lead", description=None)
    job = set_org_default(session, org, own.slug)
    first = jobs.claim(session, job.id, LEASE)
    assert first is not None and first.state == "running"
    assert first.lease_expires_at is not None and first.lease_expires_at > utcnow()
    assert jobs.claim(session, job.id, LEASE) is None
    # A batch renews the lease: still held.
    assert jobs.run_batch(session, job.id, batch_size=10, lease_seconds=LEASE) is True
    assert jobs.claim(session, job.id, LEASE) is None
    # A task that failed on a transient error gives the lease up: its retry claims it.
    jobs.release(session, job.id)
    again = jobs.claim(session, job.id, LEASE)
    assert again is not None and again.state == "running" and again.done == 1


def test_crashed_job_resumes_after_its_lease_expired_and_changes_each_once(
    session: Session,
) -> None:
    org = make_org(session)
    members = make_members(session, org, 5)
    own = rbac.create_organization_role(session, org.id, slug=None, name="Lead", description=None)
    job = set_org_default(session, org, own.slug)
    ordered = sorted(m.id for m in members)

    assert jobs.claim(session, job.id, LEASE) is not None
    assert jobs.run_batch(session, job.id, batch_size=2, lease_seconds=LEASE) is True
    session.flush()
    # The worker dies in the middle of the second batch: its transaction never commits.
    crashed = session.begin_nested()
    assert jobs.run_batch(session, job.id, batch_size=2, lease_seconds=LEASE) is True
    session.flush()
    crashed.rollback()
    session.expire_all()
    job = jobs.get_job(session, job.id)
    assert (job.state, job.cursor, job.done, job.changed) == ("running", ordered[1], 2, 2)
    assert audits(session, job) == Counter({ordered[0]: 1, ordered[1]: 1})

    # While its lease is live the redelivered task may not take it ...
    assert jobs.claim(session, job.id, LEASE) is None
    # ... once the lease has expired, a fresh claim resumes at the cursor.
    job.lease_expires_at = utcnow() - dt.timedelta(seconds=1)
    session.flush()
    batches = run_to_end(session, job, batch_size=2)
    assert batches == 2
    assert (job.state, job.done, job.changed) == ("succeeded", 5, 5)
    assert roles_of(session, members) == {m.id: [own.slug] for m in members}
    assert audits(session, job) == Counter({m.id: 1 for m in members})
    assert updated_events(session, org.id) == Counter({m.id: 1 for m in members})


def test_org_default_change_touches_only_that_organization(session: Session) -> None:
    org, other = make_org(session), make_org(session)
    mine, theirs = make_members(session, org, 3), make_members(session, other, 3)
    env_default = rbac.environment_settings(session).default_role_slug
    own = rbac.create_organization_role(session, org.id, slug=None, name="Lead", description=None)
    job = set_org_default(session, org, own.slug)
    assert job.params == {"organization_id": org.id, "default_role_slug": own.slug}
    run_to_end(session, job, batch_size=50)
    roles = roles_of(session, mine + theirs)
    assert {m.id: roles[m.id] for m in mine} == {m.id: [own.slug] for m in mine}
    assert {m.id: roles[m.id] for m in theirs} == {m.id: [env_default] for m in theirs}
    assert set(audits(session, job)) == {m.id for m in mine}

    # Clearing the override puts them back on the environment default.
    back = set_org_default(session, org, None)
    run_to_end(session, back, batch_size=50)
    assert roles_of(session, mine) == {m.id: [env_default] for m in mine}


def test_env_default_change_skips_organizations_with_their_own_default(session: Session) -> None:
    plain, overridden = make_org(session), make_org(session)
    on_env, on_own = make_members(session, plain, 3), make_members(session, overridden, 2)
    own = rbac.create_organization_role(
        session, overridden.id, slug=None, name="Lead", description=None
    )
    run_to_end(session, set_org_default(session, overridden, own.slug), batch_size=50)
    new_default = make_env_role(session)

    body, started = configuration.update_environment_settings(
        session, {"default_role_slug": new_default.slug}, actor="test"
    )
    assert body["default_role_slug"] == new_default.slug
    assert [j.type for j in started] == ["default_role_change"]
    job = started[0]
    run_to_end(session, job, batch_size=2)

    roles = roles_of(session, on_env + on_own)
    assert {m.id: roles[m.id] for m in on_env} == {m.id: [new_default.slug] for m in on_env}
    assert {m.id: roles[m.id] for m in on_own} == {m.id: [own.slug] for m in on_own}
    changed_here = {mid for mid in audits(session, job) if mid in {m.id for m in on_env + on_own}}
    assert changed_here == {m.id for m in on_env}
    # New memberships follow the new defaults at once.
    assert roles_of(session, make_members(session, plain, 1)).popitem()[1] == [new_default.slug]
    assert roles_of(session, make_members(session, overridden, 1)).popitem()[1] == [own.slug]


def test_org_default_override_agrees_with_what_memberships_get(session: Session) -> None:
    """An override is either refused or applied: never shown but ignored (DESIGN §2)."""
    org = make_org(session)
    members = make_members(session, org, 2)
    env_role = make_env_role(session)  # an environment role, not one of the organization's
    try:
        body, started = configuration.update_organization_settings(
            session, org.id, {"default_role_slug": env_role.slug}, actor="test"
        )
    except Unprocessable as exc:  # refusing it is a consistent answer too
        assert exc.code == "role_not_found"
        return
    run_to_end(session, started[0], batch_size=50)
    shown = body["effective_default_role_slug"]
    assert roles_of(session, members) == {m.id: [shown] for m in members}
    assert roles_of(session, make_members(session, org, 1)).popitem()[1] == [shown]


def test_unknown_job_type_is_refused(session: Session) -> None:
    with pytest.raises(Unprocessable):
        jobs.start_job(session, "no_such_job", {}, created_by="test")


def test_role_deletion_re_resolves_sso_profiles_that_hold_the_role(session: Session) -> None:
    """``/sso/profile`` answers the roles stored at sign-in: a deleted role must leave them
    too, in favour of what the profile resolves to now (here: the default)."""
    from idp_sync.sso import services as sso
    from idp_sync.sso.models import SsoProfile

    org = make_org(session)
    doomed, kept = make_env_role(session), make_env_role(session)
    connection = sso.create_connection(
        session,
        {
            "organization_id": org.id,
            "saml_options": {
                "idp_entity_id": "https://idp.example",
                "idp_sso_url": "https://idp.example/sso",
            },
        },
        public_url="http://idp-sync.test",
    )
    [member] = make_members(session, org, 1, [doomed.slug])
    profiles = []
    for idp_id, roles in (
        ("holder", [doomed.slug]),
        ("both", [kept.slug, doomed.slug]),
        ("other", [kept.slug]),
    ):
        profile = SsoProfile(
            id=unique("prof"),
            connection_id=connection.id,
            organization_id=org.id,
            idp_id=idp_id,
            email=f"{idp_id}-{unique('p')}@example.com",
            groups=[],
            roles=roles,
            user_id=member.user_id if idp_id == "holder" else None,
            membership_id=member.id if idp_id == "holder" else None,
        )
        session.add(profile)
        profiles.append(profile)
    session.flush()

    job = configuration.delete_role(session, doomed, actor="test")
    run_to_end(session, job, batch_size=10)
    session.flush()
    session.expire_all()

    holder, both, other = (session.get(SsoProfile, p.id) for p in profiles)
    assert holder is not None and both is not None and other is not None
    assert holder.roles == ["member"]  # as its membership: the default
    assert both.roles == ["member"]  # API-less, group-less: the default
    assert other.roles == [kept.slug]  # did not hold it: untouched
    assert roles_of(session, [member]) == {member.id: ["member"]}


def test_profiles_resolved_together_keep_to_their_own_organization(session: Session) -> None:
    """``resolve_profiles`` (a role deletion's re-resolution, many profiles per query)
    gives each profile what ``resolve_profile`` alone gives it: the membership of its own
    organization, found by user id or, before the user is linked, by email."""
    from idp_sync.sso import services as sso
    from idp_sync.sso.models import SsoProfile
    from idp_sync.sso.signin import resolve_profile, resolve_profiles

    first, second = make_env_role(session), make_env_role(session)
    orgs = [make_org(session), make_org(session)]
    connections = [
        sso.create_connection(
            session,
            {
                "organization_id": org.id,
                "saml_options": {
                    "idp_entity_id": f"https://idp.example/{org.id}",
                    "idp_sso_url": "https://idp.example/sso",
                },
            },
            public_url="http://idp-sync.test",
        )
        for org in orgs
    ]
    shared = users.create_user(session, {"email": f"{unique('both')}@example.com"})
    by_email = users.create_user(session, {"email": f"{unique('mail')}@example.com"})
    for org, slug in zip(orgs, (first.slug, second.slug), strict=True):
        memberships.create_membership(
            session, organization_id=org.id, user_id=shared.id, role_slugs=[slug]
        )
    memberships.create_membership(
        session, organization_id=orgs[1].id, user_id=by_email.id, role_slugs=[first.slug]
    )

    def profile(index: int, user_id: str | None, email: str) -> SsoProfile:
        made = SsoProfile(
            id=unique("prof"),
            connection_id=connections[index].id,
            organization_id=orgs[index].id,
            idp_id=unique("idp"),
            email=email,
            groups=[],
            roles=[],
            user_id=user_id,
        )
        session.add(made)
        return made

    profiles = [
        profile(0, shared.id, shared.email),  # linked, org A: its API role there
        profile(1, shared.id, shared.email),  # the same user in org B: org B's role
        profile(1, None, by_email.email),  # not linked yet, found by email in org B
        profile(0, None, by_email.email),  # ...who has no membership in org A
    ]
    session.flush()
    catalog = RoleCatalog(session)
    together = resolve_profiles(session, profiles, catalog)
    assert together == [[first.slug], [second.slug], [first.slug], ["member"]]
    assert together == [resolve_profile(session, p, catalog) for p in profiles]


def test_multiple_roles_off_then_priority_then_on_recompute_api_roles_kept_underneath(
    session: Session,
) -> None:
    """Issue 6 point 3: switching multiple roles off leaves each membership its
    highest-priority role, the roles set by API kept underneath (DESIGN §3); a priority
    change then picks the new top one; switching multiple roles on brings them all back.
    Each is a job that touches only the memberships it can affect."""
    from idp_sync.memberships.models import MembershipApiRole

    org, (high, low) = multiple_roles_org(session, "High", "Low")
    order = configuration.organization_settings_body(session, org.id)["priority_order"]
    assert order.index(high.slug) < order.index(low.slug)  # a new role enters at the bottom
    several = make_members(session, org, 3, [low.slug, high.slug])
    single = make_members(session, org, 1, [high.slug])
    assert set(map(tuple, roles_of(session, several).values())) == {(high.slug, low.slug)}

    def api_roles() -> dict[str, set[str]]:
        rows = session.execute(
            select(MembershipApiRole.membership_id, MembershipApiRole.role_slug).where(
                MembershipApiRole.membership_id.in_([m.id for m in several + single])
            )
        )
        found: dict[str, set[str]] = {}
        for membership_id, slug in rows:
            found.setdefault(membership_id, set()).add(slug)
        return found

    def ours(job: Job) -> Counter[str]:
        return Counter({k: v for k, v in audits(session, job).items() if k in everyone})

    everyone = {m.id for m in several + single}
    _, [off] = configuration.update_environment_settings(
        session, {"multiple_roles_enabled": False}, actor="test"
    )
    assert off.type == "multiple_roles_disabled"
    run_to_end(session, off, batch_size=2)
    assert roles_of(session, several) == {m.id: [high.slug] for m in several}
    assert roles_of(session, single) == {single[0].id: [high.slug]}
    assert ours(off) == Counter({m.id: 1 for m in several})  # the single-role one untouched
    assert api_roles() == {
        **{m.id: {high.slug, low.slug} for m in several},
        single[0].id: {high.slug},
    }

    reordered = [low.slug, *[slug for slug in order if slug != low.slug]]
    _, [priority] = configuration.update_organization_settings(
        session, org.id, {"priority_order": reordered}, actor="test"
    )
    assert priority.type == "priority_order_change"
    run_to_end(session, priority, batch_size=2)
    assert roles_of(session, several) == {m.id: [low.slug] for m in several}
    assert roles_of(session, single) == {single[0].id: [high.slug]}
    assert ours(priority) == Counter({m.id: 1 for m in several})

    _, [on] = configuration.update_environment_settings(
        session, {"multiple_roles_enabled": True}, actor="test"
    )
    run_to_end(session, on, batch_size=2)
    assert roles_of(session, several) == {m.id: [low.slug, high.slug] for m in several}


def test_role_deletion_in_multiple_roles_mode_keeps_the_other_roles(session: Session) -> None:
    """Issue 6 point 2, multiple-roles mode: the deleted role leaves each membership, its
    other roles stay, and a membership left with none gets the default."""
    org, (kept, doomed) = multiple_roles_org(session, "Kept", "Doomed")
    both = make_members(session, org, 2, [kept.slug, doomed.slug])
    only = make_members(session, org, 1, [doomed.slug])
    job = configuration.delete_role(session, doomed, actor="test")
    run_to_end(session, job, batch_size=2)
    assert roles_of(session, both) == {m.id: [kept.slug] for m in both}
    assert roles_of(session, only) == {only[0].id: ["member"]}
    assert audits(session, job) == Counter({m.id: 1 for m in both + only})
    assert session.get(Role, doomed.id) is None
