"""Permissions through the official ``workos`` SDK (DESIGN §2, §5: ``*_permission``)."""

from __future__ import annotations

import datetime as dt

import pytest
from workos._errors import ConflictError, NotFoundError, UnprocessableEntityError

from conftest import unique


def test_create_permission(sdk) -> None:
    slug = unique("users:view")
    permission = sdk.authorization.create_permission(
        slug=slug, name="View users", description="Read the user list"
    )
    assert permission.object == "permission"
    assert permission.id.startswith("perm_")
    assert permission.slug == slug
    assert permission.name == "View users"
    assert permission.description == "Read the user list"
    assert permission.system is False
    assert isinstance(permission.resource_type_slug, str)
    assert permission.created_at.tzinfo is not None
    assert permission.created_at.utcoffset() == dt.timedelta(0)
    assert permission.updated_at >= permission.created_at


def test_create_permission_without_description_is_null(sdk) -> None:
    permission = sdk.authorization.create_permission(slug=unique("billing:*"), name="Billing")
    assert permission.description is None


@pytest.mark.parametrize("stem", ["users:view", "billing.*", "a_b-c.d:e*", "x9"])
def test_permission_slug_grammar_accepts_delimiters(sdk, stem: str) -> None:
    slug = f"{stem}-{unique('p')}"
    assert sdk.authorization.create_permission(slug=slug, name="Ok").slug == slug


@pytest.mark.parametrize("slug", ["Users:View", "a b", "users/view", "café", "users!"])
def test_permission_slug_grammar_refuses_others(sdk, slug: str) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.authorization.create_permission(slug=slug, name="Bad")
    assert caught.value.status_code == 422
    assert caught.value.code


def test_duplicate_permission_slug_is_a_conflict(sdk) -> None:
    slug = unique("dup")
    first = sdk.authorization.create_permission(slug=slug, name="First")
    with pytest.raises(ConflictError) as caught:
        sdk.authorization.create_permission(slug=slug, name="Second")
    assert caught.value.status_code == 409
    assert sdk.authorization.get_permission(slug).id == first.id
    assert sdk.authorization.get_permission(slug).name == "First"


def test_get_permission(sdk) -> None:
    created = sdk.authorization.create_permission(
        slug=unique("reports:read"), name="Read reports", description="d"
    )
    fetched = sdk.authorization.get_permission(created.slug)
    assert fetched.id == created.id
    assert fetched.slug == created.slug
    assert fetched.name == "Read reports"
    assert fetched.description == "d"
    assert fetched.created_at == created.created_at


def test_get_unknown_permission_is_not_found(sdk) -> None:
    with pytest.raises(NotFoundError) as caught:
        sdk.authorization.get_permission(unique("missing"))
    assert caught.value.status_code == 404


def test_update_permission(sdk) -> None:
    created = sdk.authorization.create_permission(
        slug=unique("docs:edit"), name="Edit", description="Edit documents"
    )
    renamed = sdk.authorization.update_permission(created.slug, name="Edit docs")
    assert renamed.slug == created.slug
    assert renamed.name == "Edit docs"
    assert renamed.description == "Edit documents"  # not given: unchanged
    cleared = sdk.authorization.update_permission(created.slug, description=None)
    assert cleared.name == "Edit docs"
    assert cleared.description is None
    assert sdk.authorization.get_permission(created.slug).description is None
    assert cleared.updated_at >= created.updated_at


def test_update_unknown_permission_is_not_found(sdk) -> None:
    with pytest.raises(NotFoundError):
        sdk.authorization.update_permission(unique("missing"), name="x")


def test_delete_permission(sdk) -> None:
    created = sdk.authorization.create_permission(slug=unique("gone"), name="Gone")
    assert sdk.authorization.delete_permission(created.slug) is None
    with pytest.raises(NotFoundError):
        sdk.authorization.get_permission(created.slug)
    with pytest.raises(NotFoundError):
        sdk.authorization.delete_permission(created.slug)


def test_deleted_permission_leaves_its_roles(sdk) -> None:
    permission = sdk.authorization.create_permission(slug=unique("temp"), name="Temp")
    role = sdk.authorization.create_environment_role(slug=unique("holder"), name="Holder")
    sdk.authorization.add_environment_role_permission(role.slug, body_slug=permission.slug)
    sdk.authorization.delete_permission(permission.slug)
    assert sdk.authorization.get_environment_role(role.slug).permissions == []


def _create_many(sdk, n: int) -> list:
    tag = unique("page")
    return [sdk.authorization.create_permission(slug=f"{tag}-{i}", name=f"P{i}") for i in range(n)]


def test_list_permissions(sdk) -> None:
    created = _create_many(sdk, 3)
    page = sdk.authorization.list_permissions(limit=3)
    # Default order is desc: the newest first, so our three are this page.
    assert [p.id for p in page.data] == [p.id for p in reversed(created)]
    assert all(p.object == "permission" for p in page.data)
    assert page.list_metadata.before is None


def test_list_permissions_pagination_limit_and_cursors(sdk) -> None:
    created = _create_many(sdk, 5)
    ids = [p.id for p in created]
    # asc, starting after the permission just before ours
    first = sdk.authorization.list_permissions(limit=2, order="asc", after=ids[0])
    assert [p.id for p in first.data] == ids[1:3]
    assert first.list_metadata.after == ids[2]
    second = sdk.authorization.list_permissions(
        limit=2, order="asc", after=first.list_metadata.after
    )
    assert [p.id for p in second.data] == ids[3:5]
    assert second.list_metadata.before == ids[3]
    back = sdk.authorization.list_permissions(
        limit=2, order="asc", before=second.list_metadata.before
    )
    assert [p.id for p in back.data] == ids[1:3]
    # desc, starting after (older than) our newest
    desc = sdk.authorization.list_permissions(limit=3, order="desc", after=ids[4])
    assert [p.id for p in desc.data] == list(reversed(ids[1:4]))
    desc_back = sdk.authorization.list_permissions(limit=2, order="desc", before=ids[0])
    assert [p.id for p in desc_back.data] == list(reversed(ids[1:3]))


def test_list_permissions_order_asc_and_desc(sdk) -> None:
    created = _create_many(sdk, 3)
    ids = [p.id for p in created]
    asc = sdk.authorization.list_permissions(limit=100, order="asc", after=ids[0])
    assert [p.id for p in asc.data][:2] == ids[1:]
    desc = sdk.authorization.list_permissions(limit=3, order="desc")
    assert [p.id for p in desc.data] == list(reversed(ids))
    listed = [p.id for p in desc.data]
    assert listed == sorted(listed, reverse=True)


def test_list_permissions_auto_paging_iter(sdk) -> None:
    created = _create_many(sdk, 7)
    ids = [p.id for p in created]
    page = sdk.authorization.list_permissions(limit=2, order="asc", after=ids[0])
    assert len(page.data) == 2
    assert page.has_more()
    seen = [p.id for p in page.auto_paging_iter()]
    assert seen[:6] == ids[1:]  # more than one page, each item once, in order
    assert len(seen) == len(set(seen))
