"""Rules of roles, settings and memberships at the service level (DESIGN §2, §3, §6).

Every test runs in the rolled-back ``session`` (STYLE "Tests"): services flush into it,
nothing is committed, nothing is published (the session has no runtime).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conftest import make_org, unique
from idp_sync.errors import Conflict, Unprocessable
from idp_sync.events.models import Event
from idp_sync.memberships import services as memberships
from idp_sync.memberships.models import OrganizationMembership
from idp_sync.organizations.models import Organization
from idp_sync.rbac import services as rbac
from idp_sync.rbac.models import Role
from idp_sync.users import services as users

# --- factories ------------------------------------------------------------------------


def make_env_role(session: Session, prefix: str = "role") -> Role:
    return rbac.create_environment_role(
        session, slug=unique(prefix), name=prefix.title(), description=None
    )


def make_org_role(session: Session, org: Organization, slug: str | None = None) -> Role:
    return rbac.create_organization_role(
        session, org.id, slug=slug, name="Org Role", description=None
    )


def make_member(
    session: Session, org: Organization, role_slugs: list[str] | None = None
) -> OrganizationMembership:
    user = users.create_user(session, {"email": f"{unique('u')}@example.com"})
    return memberships.create_membership(
        session, organization_id=org.id, user_id=user.id, role_slugs=role_slugs
    )


def role_slugs(membership: OrganizationMembership) -> list[str]:
    return [r.role_slug for r in membership.roles]


def events_named(session: Session, name: str, organization_id: str | None = None) -> list[Event]:
    query = select(Event).where(Event.event == name).order_by(Event.id)
    if organization_id is not None:
        query = query.where(Event.organization_id == organization_id)
    return list(session.scalars(query))


# --- slugs ----------------------------------------------------------------------------


def test_org_role_slug_is_unique_per_organization_not_globally(session: Session) -> None:
    org_a, org_b = make_org(session), make_org(session)
    slug = unique("org-lead")
    in_a = make_org_role(session, org_a, slug)
    in_b = make_org_role(session, org_b, slug)  # same slug, another organization: allowed
    assert (in_a.scope, in_b.scope) == (org_a.id, org_b.id)
    assert in_a.id != in_b.id

    with pytest.raises(Conflict) as refused:
        make_org_role(session, org_a, slug)
    assert refused.value.code == "slug_taken"
    assert len(session.scalars(select(Role).where(Role.slug == slug)).all()) == 2


def test_environment_role_slug_is_unique(session: Session) -> None:
    role = make_env_role(session)
    with pytest.raises(Conflict) as refused:
        rbac.create_environment_role(session, slug=role.slug, name="Again", description=None)
    assert refused.value.code == "slug_taken"


def test_org_role_slug_needs_org_prefix_and_is_generated_when_omitted(session: Session) -> None:
    org = make_org(session)
    with pytest.raises(Unprocessable):
        make_org_role(session, org, unique("lead"))
    generated = rbac.create_organization_role(
        session, org.id, slug=None, name="Billing Admin", description=None
    )
    assert generated.slug.startswith("org-billing-admin-")


def test_update_changes_name_and_description_but_never_the_slug(session: Session) -> None:
    role = make_env_role(session, "viewer")
    slug, role_id = role.slug, role.id
    rbac.update_role(session, role, name="Renamed", description="new text", set_description=True)
    session.flush()
    session.expire_all()
    again = rbac.get_environment_role(session, slug)
    assert (again.id, again.slug, again.name, again.description) == (
        role_id,
        slug,
        "Renamed",
        "new text",
    )
    updated = [e for e in events_named(session, "role.updated") if e.data["slug"] == slug]
    assert [e.data["name"] for e in updated] == ["Renamed"]


# --- priority order -------------------------------------------------------------------


def test_new_environment_role_enters_priority_order_at_the_bottom(session: Session) -> None:
    before = rbac.environment_settings(session).priority_order
    first, second = make_env_role(session), make_env_role(session)
    assert rbac.environment_settings(session).priority_order == [*before, first.slug, second.slug]
    assert [r.slug for r in rbac.environment_roles(session)][-2:] == [first.slug, second.slug]


def test_effective_priority_order_with_an_organization_override(session: Session) -> None:
    org = make_org(session)
    env_low = make_env_role(session, "low")
    own_a = make_org_role(session, org)
    own_b = make_org_role(session, org)
    env_order = rbac.environment_settings(session).priority_order

    # Default: the environment order, then the organization's roles by creation.
    assert rbac.effective_priority_order(session, org.id) == [*env_order, own_a.slug, own_b.slug]

    # An override list comes first; unknown slugs are dropped, the rest follow as before.
    settings = rbac.organization_settings(session, org.id, create=True)
    assert settings is not None
    settings.priority_order = [own_b.slug, "no-such-role", env_low.slug]
    session.flush()
    rest = [s for s in [*env_order, own_a.slug] if s != env_low.slug]
    expected = [own_b.slug, env_low.slug, *rest]
    assert rbac.effective_priority_order(session, org.id) == expected
    assert [r.slug for r in rbac.organization_roles(session, org.id)] == expected
    # Another organization does not see these roles nor this order.
    other = make_org(session)
    assert rbac.effective_priority_order(session, other.id) == env_order


def test_set_org_priority_order_must_list_every_role_once(session: Session) -> None:
    org = make_org(session)
    own = make_org_role(session, org)
    current = [r.slug for r in rbac.organization_roles(session, org.id)]
    with pytest.raises(Unprocessable):
        rbac.set_org_priority_order(session, org.id, current[:-1])
    wanted = [own.slug, *[s for s in current if s != own.slug]]
    rbac.set_org_priority_order(session, org.id, wanted)
    assert rbac.effective_priority_order(session, org.id) == wanted


# --- deletion guard -------------------------------------------------------------------


def test_environment_default_role_cannot_be_deleted(session: Session) -> None:
    default_slug = rbac.environment_settings(session).default_role_slug
    default = rbac.get_environment_role(session, default_slug)
    with pytest.raises(Conflict) as refused:
        rbac.ensure_deletable(session, default)
    assert refused.value.code == "default_role_cannot_be_deleted"
    rbac.ensure_deletable(session, make_env_role(session))  # any other role may go


def test_organization_default_override_cannot_be_deleted(session: Session) -> None:
    org = make_org(session)
    override, other = make_org_role(session, org), make_org_role(session, org)
    settings = rbac.organization_settings(session, org.id, create=True)
    assert settings is not None
    settings.default_role_id = override.id
    session.flush()
    with pytest.raises(Conflict) as refused:
        rbac.ensure_deletable(session, override)
    assert refused.value.code == "default_role_cannot_be_deleted"
    rbac.ensure_deletable(session, other)


# --- memberships ----------------------------------------------------------------------


def test_new_membership_gets_the_default_role(session: Session) -> None:
    org = make_org(session)
    membership = make_member(session, org)
    assert role_slugs(membership) == [rbac.environment_settings(session).default_role_slug]
    assert (membership.role_source, membership.uses_default) == ("default", True)


def test_org_role_of_another_organization_cannot_be_assigned(session: Session) -> None:
    org_a, org_b = make_org(session), make_org(session)
    foreign = make_org_role(session, org_a)
    user = users.create_user(session, {"email": f"{unique('u')}@example.com"})
    with pytest.raises(Unprocessable) as refused:
        memberships.create_membership(
            session, organization_id=org_b.id, user_id=user.id, role_slugs=[foreign.slug]
        )
    assert refused.value.code == "role_not_found"
    found = session.scalars(
        select(OrganizationMembership).where(OrganizationMembership.user_id == user.id)
    ).all()
    assert found == []
    # In its own organization the same role is assignable.
    own = memberships.create_membership(
        session, organization_id=org_a.id, user_id=user.id, role_slugs=[foreign.slug]
    )
    assert role_slugs(own) == [foreign.slug]


def test_two_roles_refused_while_multiple_roles_is_off(session: Session) -> None:
    org = make_org(session)
    first, second = make_env_role(session), make_env_role(session)
    assert rbac.environment_settings(session).multiple_roles_enabled is False
    user = users.create_user(session, {"email": f"{unique('u')}@example.com"})
    with pytest.raises(Unprocessable) as refused:
        memberships.create_membership(
            session, organization_id=org.id, user_id=user.id, role_slugs=[first.slug, second.slug]
        )
    assert refused.value.code == "multiple_roles_not_enabled"
    member = make_member(session, org, [first.slug])
    with pytest.raises(Unprocessable) as again:
        memberships.update_roles(session, member.id, [first.slug, second.slug])
    assert again.value.code == "multiple_roles_not_enabled"
    assert role_slugs(member) == [first.slug]


def test_multiple_roles_accepted_and_ordered_by_priority(session: Session) -> None:
    rbac.environment_settings(session, for_update=True).multiple_roles_enabled = True
    session.flush()
    org = make_org(session)
    high, low = make_env_role(session, "high"), make_env_role(session, "low")  # high enters first
    own = make_org_role(session, org)  # organization roles follow the environment's
    member = make_member(session, org, [own.slug, low.slug, high.slug])
    assert role_slugs(member) == [high.slug, low.slug, own.slug]
    assert [r.role_slug for r in member.api_roles] == [own.slug, low.slug, high.slug]
    assert (member.role_source, member.uses_default) == ("api", False)
    created = [
        e
        for e in events_named(session, "organization_membership.created", org.id)
        if e.data["id"] == member.id
    ]
    assert len(created) == 1
    assert created[0].data["role"] == {"slug": high.slug}
    assert created[0].data["roles"] == [{"slug": high.slug}, {"slug": low.slug}, {"slug": own.slug}]

    # The organization's own order wins over the environment's.
    settings = rbac.organization_settings(session, org.id, create=True)
    assert settings is not None
    settings.priority_order = [own.slug, low.slug]
    session.flush()
    memberships.update_roles(session, member.id, [high.slug, low.slug, own.slug])
    assert role_slugs(member) == [own.slug, low.slug, high.slug]


def test_single_role_mode_keeps_one_api_role(session: Session) -> None:
    org = make_org(session)
    role = make_env_role(session)
    member = make_member(session, org, [role.slug])
    assert role_slugs(member) == [role.slug]
    assert (member.role_source, member.uses_default) == ("api", False)


# --- events in the same transaction ---------------------------------------------------


def test_membership_events_are_written_with_the_change(session: Session) -> None:
    org = make_org(session)
    role = make_env_role(session)
    member = make_member(session, org)
    created = [
        e
        for e in events_named(session, "organization_membership.created", org.id)
        if e.data["id"] == member.id
    ]
    assert len(created) == 1
    data = created[0].data
    assert data["object"] == "organization_membership"
    assert (data["user_id"], data["organization_id"], data["status"]) == (
        member.user_id,
        org.id,
        "active",
    )
    assert data["role"] == {"slug": rbac.environment_settings(session).default_role_slug}
    assert data["directory_managed"] is False

    memberships.update_roles(session, member.id, [role.slug])
    updated = [
        e
        for e in events_named(session, "organization_membership.updated", org.id)
        if e.data["id"] == member.id
    ]
    assert [e.data["role"] for e in updated] == [{"slug": role.slug}]
    # Setting the same role again changes nothing: no second event.
    memberships.update_roles(session, member.id, [role.slug])
    again = events_named(session, "organization_membership.updated", org.id)
    assert len(again) == 1


def test_role_events_carry_scope(session: Session) -> None:
    org = make_org(session)
    env_role = make_env_role(session)
    org_role = make_org_role(session, org)
    env_created = [
        e for e in events_named(session, "role.created") if e.data["slug"] == env_role.slug
    ]
    org_created = events_named(session, "organization_role.created", org.id)
    assert len(env_created) == 1 and env_created[0].organization_id is None
    assert [e.data["slug"] for e in org_created] == [org_role.slug]
    assert org_created[0].data["organization_id"] == org.id


def test_the_one_statement_membership_view_matches_the_serializer(session) -> None:
    """memberships.queries is a fast path: it must answer exactly what the ORM path does."""
    from idp_sync.memberships import serializers
    from idp_sync.memberships.queries import membership_view
    from idp_sync.memberships.services import create_membership
    from idp_sync.organizations.services import create_organization
    from idp_sync.users.services import create_user

    org = create_organization(
        session,
        name="View Org",
        domains=[],
        external_id=None,
        metadata={"k": "v"},
        allow_profiles_outside_organization=None,
    )
    user = create_user(
        session, {"email": "view@example.com", "first_name": "Vi", "metadata": {"a": "b"}}
    )
    membership = create_membership(
        session, organization_id=org.id, user_id=user.id, role_slugs=None
    )
    session.flush()
    assert membership_view(session, membership.id) == serializers.membership(membership, org.name)
    assert membership_view(session, "om_missing") is None
