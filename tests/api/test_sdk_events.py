"""Events through the official ``workos`` SDK (DESIGN §6: ``events.list_events``)."""

from __future__ import annotations

import httpx
from workos.common.models.organization_created import OrganizationCreated
from workos.common.models.organization_membership_created import OrganizationMembershipCreated
from workos.common.models.organization_membership_deleted import OrganizationMembershipDeleted
from workos.common.models.organization_membership_updated import OrganizationMembershipUpdated
from workos.common.models.organization_role_created import OrganizationRoleCreated
from workos.common.models.permission_created import PermissionCreated
from workos.common.models.permission_updated import PermissionUpdated
from workos.common.models.role_created import RoleCreated
from workos.organization_membership._resource import RoleSingle

from conftest import API_KEY, unique

MEMBERSHIP_EVENTS = [
    "organization_membership.created",
    "organization_membership.updated",
    "organization_membership.deleted",
]


def _org_with_members(sdk, n: int):  # type: ignore[no-untyped-def]
    org = sdk.organizations.create_organization(name=unique("Events"))
    memberships = []
    for _ in range(n):
        user = sdk.user_management.create_user(email=f"{unique('ev')}@example.com")
        memberships.append(
            sdk.organization_membership.create_organization_membership(
                user_id=user.id, organization_id=org.id
            )
        )
    return org, memberships


def _walk(sdk, *, events: list[str], organization_id: str, after: str | None, limit: int):  # type: ignore[no-untyped-def]
    """Page forward with ``after`` as a poller does; returns the events and the last cursor."""
    seen = []
    cursor = after
    while True:
        page = sdk.events.list_events(
            events=events, organization_id=organization_id, after=cursor, limit=limit
        )
        if not page.data:
            return seen, cursor
        assert len(page.data) <= limit
        seen.extend(page.data)
        cursor = page.list_metadata.after
        assert cursor == page.data[-1].id


def test_list_events_filters_by_names_comma_joined(live, sdk) -> None:
    org, memberships = _org_with_members(sdk, 2)
    role = sdk.authorization.create_environment_role(slug=unique("ev-role"), name="Ev")
    sdk.organization_membership.update_organization_membership(
        memberships[0].id, role=RoleSingle(role_slug=role.slug)
    )
    page = sdk.events.list_events(
        events=["organization_membership.created", "organization_membership.updated"],
        organization_id=org.id,
        limit=100,
    )
    names = [e.event for e in page.data]
    assert names == [
        "organization_membership.created",
        "organization_membership.created",
        "organization_membership.updated",
    ]
    only_created = sdk.events.list_events(
        events=["organization_membership.created"], organization_id=org.id, limit=100
    )
    assert [e.data.id for e in only_created.data] == [m.id for m in memberships]
    # The SDK joins the names with commas; the same query by hand gives the same answer.
    raw = httpx.get(
        f"{live.url}/events",
        params={
            "events": "organization_membership.created,organization_membership.updated",
            "organization_id": org.id,
            "limit": 100,
        },
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert raw.status_code == 200, raw.text
    assert [e["id"] for e in raw.json()["data"]] == [e.id for e in page.data]


def test_list_events_filters_by_organization(sdk) -> None:
    org_a, members_a = _org_with_members(sdk, 2)
    org_b, members_b = _org_with_members(sdk, 1)
    page_a = sdk.events.list_events(events=MEMBERSHIP_EVENTS, organization_id=org_a.id, limit=100)
    assert {e.data.id for e in page_a.data} == {m.id for m in members_a}
    assert all(e.data.organization_id == org_a.id for e in page_a.data)
    page_b = sdk.events.list_events(events=MEMBERSHIP_EVENTS, organization_id=org_b.id, limit=100)
    assert [e.data.id for e in page_b.data] == [members_b[0].id]
    created = sdk.events.list_events(
        events=["organization.created"], organization_id=org_a.id, limit=100
    )
    assert len(created.data) == 1
    assert isinstance(created.data[0], OrganizationCreated)
    assert created.data[0].data.id == org_a.id


def test_after_cursor_sees_each_event_once_in_order(sdk) -> None:
    org, memberships = _org_with_members(sdk, 5)
    seen, cursor = _walk(sdk, events=MEMBERSHIP_EVENTS, organization_id=org.id, after=None, limit=2)
    assert [e.data.id for e in seen] == [m.id for m in memberships]
    ids = [e.id for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # oldest first, none twice
    # A poller resuming from its cursor sees only what happened since, in order.
    sdk.organization_membership.deactivate_organization_membership(memberships[1].id)
    sdk.organization_membership.delete_organization_membership(memberships[3].id)
    later, _ = _walk(sdk, events=MEMBERSHIP_EVENTS, organization_id=org.id, after=cursor, limit=2)
    assert [(e.event, e.data.id) for e in later] == [
        ("organization_membership.updated", memberships[1].id),
        ("organization_membership.deleted", memberships[3].id),
    ]
    assert later[0].data.status == "inactive"
    assert later[0].id > ids[-1]


def test_auto_paging_iter_over_events(sdk) -> None:
    org, memberships = _org_with_members(sdk, 5)
    page = sdk.events.list_events(events=MEMBERSHIP_EVENTS, organization_id=org.id, limit=2)
    assert len(page.data) == 2
    assert [e.data.id for e in page.auto_paging_iter()] == [m.id for m in memberships]


def test_event_data_parses_as_the_sdk_models(sdk) -> None:
    org, (membership,) = _org_with_members(sdk, 1)
    role = sdk.authorization.create_environment_role(slug=unique("typed"), name="Typed")
    sdk.organization_membership.update_organization_membership(
        membership.id, role=RoleSingle(role_slug=role.slug)
    )
    sdk.organization_membership.delete_organization_membership(membership.id)
    events = sdk.events.list_events(
        events=MEMBERSHIP_EVENTS, organization_id=org.id, limit=100
    ).data
    created, updated, deleted = events
    assert isinstance(created, OrganizationMembershipCreated)
    assert created.object == "event"
    assert created.id.startswith("event_")
    assert created.data.id == membership.id
    assert created.data.user_id == membership.user_id
    assert created.data.role.slug == "member"
    assert created.created_at.utcoffset().total_seconds() == 0
    assert isinstance(updated, OrganizationMembershipUpdated)
    assert updated.data.role.slug == role.slug
    assert isinstance(deleted, OrganizationMembershipDeleted)
    assert deleted.data.id == membership.id


def test_rbac_event_data_parses_as_the_sdk_models(sdk) -> None:
    org = sdk.organizations.create_organization(name=unique("Rbac"))
    permission = sdk.authorization.create_permission(slug=unique("ev:perm"), name="Ev")
    sdk.authorization.update_permission(permission.slug, name="Ev renamed")
    role = sdk.authorization.create_environment_role(slug=unique("ev-env"), name="EvEnv")
    org_role = sdk.authorization.create_organization_role(org.id, name="Org Ev")

    def find(name: str, key):  # type: ignore[no-untyped-def]
        page = sdk.events.list_events(events=[name], limit=100, order="desc")
        return next(e for e in page.data if key(e))

    perm_created = find("permission.created", lambda e: e.data.slug == permission.slug)
    assert isinstance(perm_created, PermissionCreated)
    assert perm_created.data.name == "Ev"
    perm_updated = find("permission.updated", lambda e: e.data.slug == permission.slug)
    assert isinstance(perm_updated, PermissionUpdated)
    assert perm_updated.data.name == "Ev renamed"
    role_created = find("role.created", lambda e: e.data.slug == role.slug)
    assert isinstance(role_created, RoleCreated)
    org_role_created = sdk.events.list_events(
        events=["organization_role.created"], organization_id=org.id
    ).data
    assert len(org_role_created) == 1
    assert isinstance(org_role_created[0], OrganizationRoleCreated)
    assert org_role_created[0].data.slug == org_role.slug
    assert org_role_created[0].data.organization_id == org.id
