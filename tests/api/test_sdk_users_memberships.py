"""Users and organization memberships through the official ``workos`` SDK (DESIGN §2, §3, §5).

The environment's default role (``member``) and ``multiple_roles`` (off) are global and are
left untouched here.
"""

from __future__ import annotations

import httpx
import pytest
from workos._errors import ConflictError, NotFoundError, UnprocessableEntityError
from workos.common.models.organization_membership_status import OrganizationMembershipStatus
from workos.organization_membership._resource import RoleMultiple, RoleSingle

from conftest import API_KEY, unique

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
DEFAULT_ROLE = "member"


def _email() -> str:
    return f"{unique('user')}@example.com"


@pytest.fixture
def org(sdk):  # type: ignore[no-untyped-def]
    return sdk.organizations.create_organization(name=unique("Acme"))


@pytest.fixture
def user(sdk):  # type: ignore[no-untyped-def]
    return sdk.user_management.create_user(email=_email(), first_name="Ada", last_name="Lovelace")


@pytest.fixture
def role(sdk):  # type: ignore[no-untyped-def]
    return sdk.authorization.create_environment_role(slug=unique("editor"), name="Editor")


# --- users ----------------------------------------------------------------------------


def test_create_user(sdk) -> None:
    email = _email()
    created = sdk.user_management.create_user(
        email=f"  {email.upper()} ",
        first_name="Grace",
        last_name="Hopper",
        external_id=unique("ext"),
        metadata={"team": "navy"},
    )
    assert created.object == "user"
    assert created.id.startswith("user_")
    assert created.email == email  # trimmed and lower-cased, as WorkOS does
    assert created.first_name == "Grace"
    assert created.last_name == "Hopper"
    assert created.email_verified is False
    assert created.profile_picture_url is None
    assert created.last_sign_in_at is None
    assert created.metadata == {"team": "navy"}
    assert created.created_at.utcoffset().total_seconds() == 0


def test_create_user_with_taken_email_is_a_conflict(sdk, user) -> None:
    with pytest.raises(ConflictError) as caught:
        sdk.user_management.create_user(email=user.email)
    assert caught.value.status_code == 409


def test_create_user_with_invalid_email_is_refused(sdk) -> None:
    with pytest.raises(UnprocessableEntityError):
        sdk.user_management.create_user(email="not an email")


def test_get_user(sdk, user) -> None:
    fetched = sdk.user_management.get_user(user.id)
    assert fetched.id == user.id
    assert fetched.email == user.email
    assert fetched.first_name == "Ada"
    assert fetched.external_id is None
    with pytest.raises(NotFoundError):
        sdk.user_management.get_user("user_01DOESNOTEXIST")


def test_list_users_by_email(sdk, user) -> None:
    sdk.user_management.create_user(email=_email())
    page = sdk.user_management.list_users(email=user.email.upper())
    assert [u.id for u in page.data] == [user.id]
    assert sdk.user_management.list_users(email=_email()).data == []


def test_list_users_by_organization(sdk, org) -> None:
    members = [sdk.user_management.create_user(email=_email()) for _ in range(3)]
    sdk.user_management.create_user(email=_email())  # not a member
    for u in members:
        sdk.organization_membership.create_organization_membership(
            user_id=u.id, organization_id=org.id
        )
    page = sdk.user_management.list_users(organization_id=org.id, limit=2)
    assert len(page.data) == 2
    assert {u.id for u in page.auto_paging_iter()} == {u.id for u in members}


def test_update_user(sdk, user) -> None:
    new_email = _email()
    updated = sdk.user_management.update_user(
        user.id, email=new_email, first_name="Augusta", email_verified=True, metadata={"k": "v"}
    )
    assert updated.id == user.id
    assert updated.email == new_email
    assert updated.first_name == "Augusta"
    assert updated.last_name == "Lovelace"  # not given: unchanged
    assert updated.email_verified is True
    assert updated.metadata == {"k": "v"}
    assert updated.updated_at >= user.updated_at
    assert sdk.user_management.get_user(user.id).email == new_email


def test_update_user_to_a_taken_email_is_a_conflict(sdk, user) -> None:
    other = sdk.user_management.create_user(email=_email())
    with pytest.raises(ConflictError):
        sdk.user_management.update_user(other.id, email=user.email)


def test_delete_user(sdk, user, org) -> None:
    membership = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    assert sdk.user_management.delete_user(user.id) is None
    with pytest.raises(NotFoundError):
        sdk.user_management.get_user(user.id)
    with pytest.raises(NotFoundError):
        sdk.organization_membership.get_organization_membership(membership.id)


# --- memberships ----------------------------------------------------------------------


def test_create_membership_gets_the_default_role(sdk, org, user) -> None:
    membership = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    assert membership.object == "organization_membership"
    assert membership.id.startswith("om_")
    assert membership.user_id == user.id
    assert membership.organization_id == org.id
    assert membership.organization_name == org.name
    assert membership.status == OrganizationMembershipStatus.ACTIVE
    assert membership.directory_managed is False
    assert membership.role.slug == DEFAULT_ROLE
    assert [r.slug for r in membership.roles] == [DEFAULT_ROLE]
    # The full user is embedded (DESIGN §5).
    assert membership.user.id == user.id
    assert membership.user.email == user.email
    assert membership.user.first_name == "Ada"
    assert membership.user.created_at == user.created_at


def test_create_membership_with_role_single(sdk, org, user, role) -> None:
    membership = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id, role=RoleSingle(role_slug=role.slug)
    )
    assert membership.role.slug == role.slug
    assert [r.slug for r in membership.roles] == [role.slug]


def test_create_membership_with_role_multiple_is_refused(sdk, org, user, role) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.organization_membership.create_organization_membership(
            user_id=user.id,
            organization_id=org.id,
            role=RoleMultiple(role_slugs=[role.slug, DEFAULT_ROLE]),
        )
    assert caught.value.status_code == 422
    assert caught.value.code == "multiple_roles_not_enabled"
    assert sdk.organization_membership.list_organization_memberships(user_id=user.id).data == []


def test_create_membership_with_unknown_role_is_refused(sdk, org, user) -> None:
    with pytest.raises(UnprocessableEntityError):
        sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=org.id, role=RoleSingle(role_slug=unique("nope"))
        )


def test_create_membership_for_unknown_user_or_organization(sdk, org, user) -> None:
    with pytest.raises(NotFoundError):
        sdk.organization_membership.create_organization_membership(
            user_id="user_01DOESNOTEXIST", organization_id=org.id
        )
    with pytest.raises(NotFoundError):
        sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id="org_01DOESNOTEXIST"
        )


def test_organization_role_of_another_organization_is_refused(sdk, org, user) -> None:
    other = sdk.organizations.create_organization(name=unique("Other"))
    foreign = sdk.authorization.create_organization_role(other.id, slug=unique("org-x"), name="X")
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=org.id, role=RoleSingle(role_slug=foreign.slug)
        )
    assert caught.value.status_code == 422
    membership = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    with pytest.raises(UnprocessableEntityError):
        sdk.organization_membership.update_organization_membership(
            membership.id, role=RoleSingle(role_slug=foreign.slug)
        )
    # Its own organization's role is assignable.
    own = sdk.authorization.create_organization_role(org.id, slug=unique("org-own"), name="Own")
    updated = sdk.organization_membership.update_organization_membership(
        membership.id, role=RoleSingle(role_slug=own.slug)
    )
    assert updated.role.slug == own.slug


def test_create_membership_for_existing_active_pair_is_a_conflict(sdk, org, user) -> None:
    first = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    with pytest.raises(ConflictError) as caught:
        sdk.organization_membership.create_organization_membership(
            user_id=user.id, organization_id=org.id
        )
    assert caught.value.status_code == 409
    listed = sdk.organization_membership.list_organization_memberships(user_id=user.id)
    assert [m.id for m in listed.data] == [first.id]


def test_create_membership_for_inactive_pair_reactivates_it(sdk, org, user, role) -> None:
    first = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    sdk.organization_membership.deactivate_organization_membership(first.id)
    again = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id, role=RoleSingle(role_slug=role.slug)
    )
    assert again.id == first.id
    assert again.status == OrganizationMembershipStatus.ACTIVE
    assert again.role.slug == role.slug


def test_get_membership(sdk, org, user) -> None:
    created = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    fetched = sdk.organization_membership.get_organization_membership(created.id)
    assert fetched.id == created.id
    assert fetched.role.slug == DEFAULT_ROLE
    assert fetched.user.email == user.email
    assert fetched.organization_name == org.name
    assert fetched.created_at == created.created_at
    with pytest.raises(NotFoundError):
        sdk.organization_membership.get_organization_membership("om_01DOESNOTEXIST")


def test_list_memberships_filters(sdk, org) -> None:
    users = [sdk.user_management.create_user(email=_email()) for _ in range(3)]
    memberships = [
        sdk.organization_membership.create_organization_membership(
            user_id=u.id, organization_id=org.id
        )
        for u in users
    ]
    other_org = sdk.organizations.create_organization(name=unique("Other"))
    elsewhere = sdk.organization_membership.create_organization_membership(
        user_id=users[0].id, organization_id=other_org.id
    )
    inactive = sdk.organization_membership.deactivate_organization_membership(memberships[2].id)
    assert inactive.status == OrganizationMembershipStatus.INACTIVE

    by_org = sdk.organization_membership.list_organization_memberships(organization_id=org.id)
    assert [m.id for m in by_org.data] == [memberships[1].id, memberships[0].id]  # active only
    assert all(m.user.id in {u.id for u in users} for m in by_org.data)

    by_user = sdk.organization_membership.list_organization_memberships(user_id=users[0].id)
    assert {m.id for m in by_user.data} == {memberships[0].id, elsewhere.id}

    both = sdk.organization_membership.list_organization_memberships(
        organization_id=org.id, user_id=users[0].id
    )
    assert [m.id for m in both.data] == [memberships[0].id]

    all_statuses = sdk.organization_membership.list_organization_memberships(
        organization_id=org.id, statuses=["active", "inactive"], order="asc"
    )
    assert [m.id for m in all_statuses.data] == [m.id for m in memberships]
    only_inactive = sdk.organization_membership.list_organization_memberships(
        organization_id=org.id, statuses=["inactive"]
    )
    assert [m.id for m in only_inactive.data] == [memberships[2].id]


def test_list_memberships_needs_a_filter(sdk) -> None:
    with pytest.raises(UnprocessableEntityError):
        sdk.organization_membership.list_organization_memberships()


def test_update_membership_role(sdk, org, user, role) -> None:
    created = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    updated = sdk.organization_membership.update_organization_membership(
        created.id, role=RoleSingle(role_slug=role.slug)
    )
    assert updated.id == created.id
    assert updated.role.slug == role.slug
    assert [r.slug for r in updated.roles] == [role.slug]
    assert updated.user.id == user.id
    assert (
        sdk.organization_membership.get_organization_membership(created.id).role.slug == role.slug
    )
    back = sdk.organization_membership.update_organization_membership(
        created.id, role=RoleSingle(role_slug=DEFAULT_ROLE)
    )
    assert back.role.slug == DEFAULT_ROLE
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.organization_membership.update_organization_membership(
            created.id, role=RoleMultiple(role_slugs=[role.slug, DEFAULT_ROLE])
        )
    assert caught.value.code == "multiple_roles_not_enabled"


def test_deactivate_and_reactivate_membership(sdk, org, user, role) -> None:
    created = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id, role=RoleSingle(role_slug=role.slug)
    )
    inactive = sdk.organization_membership.deactivate_organization_membership(created.id)
    assert inactive.id == created.id
    assert inactive.status == OrganizationMembershipStatus.INACTIVE
    assert inactive.user.id == user.id
    assert (
        sdk.organization_membership.get_organization_membership(created.id).status
        == OrganizationMembershipStatus.INACTIVE
    )
    still = sdk.organization_membership.deactivate_organization_membership(created.id)
    assert still.status == OrganizationMembershipStatus.INACTIVE  # a no-op
    active = sdk.organization_membership.reactivate_organization_membership(created.id)
    assert active.status == OrganizationMembershipStatus.ACTIVE
    assert active.role.slug == role.slug  # roles retained


def test_delete_membership(sdk, org, user) -> None:
    created = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    assert sdk.organization_membership.delete_organization_membership(created.id) is None
    with pytest.raises(NotFoundError):
        sdk.organization_membership.get_organization_membership(created.id)
    with pytest.raises(NotFoundError):
        sdk.organization_membership.delete_organization_membership(created.id)
    assert sdk.user_management.get_user(user.id).id == user.id  # the user stays
    again = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    assert again.id != created.id


def test_role_explanation_shows_default_then_api(live, sdk, org, user, role) -> None:
    membership = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    url = f"{live.url}/user_management/organization_memberships/{membership.id}/role_explanation"
    before = httpx.get(url, headers=HEADERS)
    assert before.status_code == 200, before.text
    assert before.json()["source"] == "default"
    assert before.json()["roles"] == [DEFAULT_ROLE]
    sdk.organization_membership.update_organization_membership(
        membership.id, role=RoleSingle(role_slug=role.slug)
    )
    after = httpx.get(url, headers=HEADERS)
    assert after.status_code == 200, after.text
    body = after.json()
    assert body["source"] == "api"
    assert body["roles"] == [role.slug]
    assert body["api_roles"] == [role.slug]
    missing = httpx.get(
        f"{live.url}/user_management/organization_memberships/om_01NOPE/role_explanation",
        headers=HEADERS,
    )
    assert missing.status_code == 404
