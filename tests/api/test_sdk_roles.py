"""Environment and organization roles through the official ``workos`` SDK (DESIGN §2, §5)."""

from __future__ import annotations

import httpx
import pytest
from workos._errors import ConflictError, NotFoundError, UnprocessableEntityError
from workos.common.models.role_type import RoleType

from conftest import API_KEY, unique

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _permission(sdk, stem: str = "perm") -> str:
    return sdk.authorization.create_permission(slug=unique(stem), name=stem).slug


# --- environment roles ----------------------------------------------------------------


def test_create_environment_role(sdk) -> None:
    slug = unique("viewer")
    role = sdk.authorization.create_environment_role(slug=slug, name="Viewer", description="Reads")
    assert role.object == "role"
    assert role.id.startswith("role_")
    assert role.slug == slug
    assert role.name == "Viewer"
    assert role.description == "Reads"
    assert role.type == RoleType.ENVIRONMENT_ROLE
    assert role.permissions == []
    assert isinstance(role.resource_type_slug, str)
    assert role.created_at.utcoffset().total_seconds() == 0


def test_create_environment_role_duplicate_slug_is_a_conflict(sdk) -> None:
    slug = unique("dupe")
    sdk.authorization.create_environment_role(slug=slug, name="One")
    with pytest.raises(ConflictError) as caught:
        sdk.authorization.create_environment_role(slug=slug, name="Two")
    assert caught.value.status_code == 409


def test_environment_role_slug_may_not_start_with_org(sdk) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.authorization.create_environment_role(slug=unique("org-admin"), name="Nope")
    assert caught.value.status_code == 422


def test_new_environment_role_enters_priority_order_at_the_bottom(live, sdk) -> None:
    role = sdk.authorization.create_environment_role(slug=unique("lowest"), name="Lowest")
    settings = httpx.get(f"{live.url}/authorization/settings", headers=HEADERS)
    assert settings.status_code == 200, settings.text
    assert settings.json()["priority_order"][-1] == role.slug
    listed = sdk.authorization.list_environment_roles()
    assert listed.data[-1].slug == role.slug  # listed in priority order


def test_list_environment_roles(sdk) -> None:
    a = sdk.authorization.create_environment_role(slug=unique("list-a"), name="A")
    b = sdk.authorization.create_environment_role(slug=unique("list-b"), name="B")
    listed = sdk.authorization.list_environment_roles()
    assert listed.object == "list"
    slugs = [r.slug for r in listed.data]
    assert "member" in slugs  # the seeded default role
    assert slugs.index(a.slug) < slugs.index(b.slug)
    assert all(r.type == RoleType.ENVIRONMENT_ROLE for r in listed.data)


def test_get_environment_role(sdk) -> None:
    created = sdk.authorization.create_environment_role(slug=unique("getme"), name="Get me")
    fetched = sdk.authorization.get_environment_role(created.slug)
    assert fetched.id == created.id
    assert fetched.name == "Get me"
    assert fetched.description is None
    with pytest.raises(NotFoundError):
        sdk.authorization.get_environment_role(unique("missing"))


def test_update_environment_role(sdk) -> None:
    created = sdk.authorization.create_environment_role(
        slug=unique("upd"), name="Before", description="old"
    )
    renamed = sdk.authorization.update_environment_role(created.slug, name="After")
    assert renamed.slug == created.slug
    assert renamed.name == "After"
    assert renamed.description == "old"
    cleared = sdk.authorization.update_environment_role(created.slug, description=None)
    assert cleared.description is None
    assert cleared.name == "After"
    assert sdk.authorization.get_environment_role(created.slug).description is None


def test_add_environment_role_permission_is_idempotent(sdk) -> None:
    role = sdk.authorization.create_environment_role(slug=unique("adder"), name="Adder")
    perm = _permission(sdk, "docs:read")
    once = sdk.authorization.add_environment_role_permission(role.slug, body_slug=perm)
    assert once.permissions == [perm]
    twice = sdk.authorization.add_environment_role_permission(role.slug, body_slug=perm)
    assert twice.permissions == [perm]
    assert sdk.authorization.get_environment_role(role.slug).permissions == [perm]


def test_add_unknown_permission_to_environment_role_is_refused(sdk) -> None:
    role = sdk.authorization.create_environment_role(slug=unique("adder"), name="Adder")
    with pytest.raises(UnprocessableEntityError):
        sdk.authorization.add_environment_role_permission(role.slug, body_slug=unique("nope"))
    assert sdk.authorization.get_environment_role(role.slug).permissions == []


def test_set_environment_role_permissions_replaces(sdk) -> None:
    role = sdk.authorization.create_environment_role(slug=unique("setter"), name="Setter")
    p1, p2, p3 = (_permission(sdk, s) for s in ("a:read", "a:write", "a:admin"))
    first = sdk.authorization.set_environment_role_permissions(role.slug, permissions=[p1, p2])
    assert sorted(first.permissions) == sorted([p1, p2])
    second = sdk.authorization.set_environment_role_permissions(role.slug, permissions=[p3])
    assert second.permissions == [p3]
    emptied = sdk.authorization.set_environment_role_permissions(role.slug, permissions=[])
    assert emptied.permissions == []


def test_set_environment_role_permissions_with_unknown_permission_is_refused(sdk) -> None:
    role = sdk.authorization.create_environment_role(slug=unique("setter"), name="Setter")
    known = _permission(sdk)
    sdk.authorization.set_environment_role_permissions(role.slug, permissions=[known])
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.authorization.set_environment_role_permissions(
            role.slug, permissions=[known, unique("unknown")]
        )
    assert caught.value.status_code == 422
    assert sdk.authorization.get_environment_role(role.slug).permissions == [known]  # unchanged


# --- organization roles ---------------------------------------------------------------


@pytest.fixture
def org(sdk):  # type: ignore[no-untyped-def]
    return sdk.organizations.create_organization(name=unique("Acme"))


@pytest.fixture
def other_org(sdk):  # type: ignore[no-untyped-def]
    return sdk.organizations.create_organization(name=unique("Globex"))


def test_create_organization_role_with_slug(sdk, org) -> None:
    slug = unique("org-auditor")
    role = sdk.authorization.create_organization_role(
        org.id, slug=slug, name="Auditor", description="Audits"
    )
    assert role.object == "role"
    assert role.id.startswith("role_")
    assert role.slug == slug
    assert role.name == "Auditor"
    assert role.description == "Audits"
    assert role.type == RoleType.ORGANIZATION_ROLE
    assert role.permissions == []


def test_create_organization_role_without_slug_generates_one(sdk, org) -> None:
    role = sdk.authorization.create_organization_role(org.id, name="Billing Admin")
    assert role.slug.startswith("org-")
    assert "billing-admin" in role.slug
    assert role.type == RoleType.ORGANIZATION_ROLE
    other = sdk.authorization.create_organization_role(org.id, name="Billing Admin")
    assert other.slug != role.slug  # random suffix


def test_create_organization_role_slug_must_start_with_org(sdk, org) -> None:
    with pytest.raises(UnprocessableEntityError):
        sdk.authorization.create_organization_role(org.id, slug=unique("auditor"), name="Bad")


def test_create_organization_role_duplicate_slug_is_a_conflict(sdk, org, other_org) -> None:
    slug = unique("org-dup")
    sdk.authorization.create_organization_role(org.id, slug=slug, name="One")
    with pytest.raises(ConflictError):
        sdk.authorization.create_organization_role(org.id, slug=slug, name="Two")
    # Unique within the organization only.
    elsewhere = sdk.authorization.create_organization_role(other_org.id, slug=slug, name="Three")
    assert elsewhere.slug == slug


def test_create_organization_role_for_unknown_organization_is_not_found(sdk) -> None:
    with pytest.raises(NotFoundError):
        sdk.authorization.create_organization_role("org_01UNKNOWN", name="Ghost")


def test_list_organization_roles(sdk, org, other_org) -> None:
    env_role = sdk.authorization.create_environment_role(slug=unique("envr"), name="Env")
    own = sdk.authorization.create_organization_role(org.id, slug=unique("org-own"), name="Own")
    theirs = sdk.authorization.create_organization_role(
        other_org.id, slug=unique("org-theirs"), name="Theirs"
    )
    listed = sdk.authorization.list_organization_roles(org.id)
    assert listed.object == "list"
    by_slug = {r.slug: r for r in listed.data}
    assert by_slug[env_role.slug].type == RoleType.ENVIRONMENT_ROLE
    assert by_slug["member"].type == RoleType.ENVIRONMENT_ROLE
    assert by_slug[own.slug].type == RoleType.ORGANIZATION_ROLE
    assert theirs.slug not in by_slug  # invisible to another organization
    slugs = [r.slug for r in listed.data]
    assert slugs[-1] == own.slug  # org roles after the environment's, in priority order
    other_slugs = {r.slug for r in sdk.authorization.list_organization_roles(other_org.id).data}
    assert theirs.slug in other_slugs
    assert own.slug not in other_slugs


def test_get_organization_role(sdk, org, other_org) -> None:
    own = sdk.authorization.create_organization_role(org.id, slug=unique("org-get"), name="Get")
    fetched = sdk.authorization.get_organization_role(org.id, own.slug)
    assert fetched.id == own.id
    assert fetched.type == RoleType.ORGANIZATION_ROLE
    # An environment role is gettable through the organization's path too.
    env = sdk.authorization.get_organization_role(org.id, "member")
    assert env.slug == "member"
    assert env.type == RoleType.ENVIRONMENT_ROLE
    # Another organization's role is not found from this organization.
    with pytest.raises(NotFoundError) as caught:
        sdk.authorization.get_organization_role(other_org.id, own.slug)
    assert caught.value.status_code == 404


def test_update_organization_role(sdk, org, other_org) -> None:
    own = sdk.authorization.create_organization_role(
        org.id, slug=unique("org-upd"), name="Before", description="old"
    )
    renamed = sdk.authorization.update_organization_role(org.id, own.slug, name="After")
    assert renamed.name == "After"
    assert renamed.description == "old"
    assert renamed.slug == own.slug
    cleared = sdk.authorization.update_organization_role(org.id, own.slug, description=None)
    assert cleared.description is None
    assert sdk.authorization.get_organization_role(org.id, own.slug).name == "After"
    with pytest.raises(NotFoundError):
        sdk.authorization.update_organization_role(other_org.id, own.slug, name="Hijack")


def test_add_organization_role_permission(sdk, org) -> None:
    own = sdk.authorization.create_organization_role(org.id, slug=unique("org-add"), name="Add")
    perm = _permission(sdk, "org:read")
    once = sdk.authorization.add_organization_role_permission(org.id, own.slug, body_slug=perm)
    assert once.permissions == [perm]
    twice = sdk.authorization.add_organization_role_permission(org.id, own.slug, body_slug=perm)
    assert twice.permissions == [perm]
    with pytest.raises(UnprocessableEntityError):
        sdk.authorization.add_organization_role_permission(
            org.id, own.slug, body_slug=unique("unknown")
        )


def test_set_organization_role_permissions(sdk, org) -> None:
    own = sdk.authorization.create_organization_role(org.id, slug=unique("org-set"), name="Set")
    p1, p2, p3 = (_permission(sdk, s) for s in ("o:read", "o:write", "o:admin"))
    first = sdk.authorization.set_organization_role_permissions(
        org.id, own.slug, permissions=[p1, p2]
    )
    assert sorted(first.permissions) == sorted([p1, p2])
    second = sdk.authorization.set_organization_role_permissions(org.id, own.slug, permissions=[p3])
    assert second.permissions == [p3]
    with pytest.raises(UnprocessableEntityError):
        sdk.authorization.set_organization_role_permissions(
            org.id, own.slug, permissions=[unique("unknown")]
        )
    assert sdk.authorization.get_organization_role(org.id, own.slug).permissions == [p3]


def test_remove_organization_role_permission(sdk, org) -> None:
    own = sdk.authorization.create_organization_role(org.id, slug=unique("org-rm"), name="Rm")
    p1, p2 = _permission(sdk, "r:one"), _permission(sdk, "r:two")
    sdk.authorization.set_organization_role_permissions(org.id, own.slug, permissions=[p1, p2])
    assert sdk.authorization.remove_organization_role_permission(org.id, own.slug, p1) is None
    assert sdk.authorization.get_organization_role(org.id, own.slug).permissions == [p2]
    with pytest.raises(NotFoundError):
        sdk.authorization.remove_organization_role_permission(org.id, own.slug, p1)
