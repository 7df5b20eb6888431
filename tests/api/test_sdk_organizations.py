"""Organizations through the official ``workos`` SDK (DESIGN §5: ``organizations.*``)."""

from __future__ import annotations

import uuid

import pytest
from workos._errors import ConflictError, NotFoundError

from conftest import unique


def _domain() -> str:
    return f"{uuid.uuid4().hex[:10]}.example.com"


def test_create_organization(sdk) -> None:
    name = unique("Acme")
    d1, d2 = _domain(), _domain()
    external_id = unique("ext")
    org = sdk.organizations.create_organization(
        name=name, domains=[d1, d2], external_id=external_id, metadata={"tier": "gold"}
    )
    assert org.object == "organization"
    assert org.id.startswith("org_")
    assert org.name == name
    assert sorted(d.domain for d in org.domains) == sorted([d1, d2])
    assert all(
        d.object == "organization_domain" and d.organization_id == org.id for d in org.domains
    )
    assert org.external_id == external_id
    assert org.metadata == {"tier": "gold"}
    assert org.created_at.utcoffset().total_seconds() == 0
    assert org.updated_at >= org.created_at


def test_create_minimal_organization_has_nulls_and_empties(sdk) -> None:
    org = sdk.organizations.create_organization(name=unique("Bare"))
    assert org.domains == []
    assert org.metadata == {}
    assert org.external_id is None
    assert org.stripe_customer_id is None


def test_create_organization_with_taken_external_id_is_a_conflict(sdk) -> None:
    external_id = unique("ext")
    sdk.organizations.create_organization(name=unique("One"), external_id=external_id)
    with pytest.raises(ConflictError) as caught:
        sdk.organizations.create_organization(name=unique("Two"), external_id=external_id)
    assert caught.value.status_code == 409


def test_get_organization(sdk) -> None:
    domain = _domain()
    created = sdk.organizations.create_organization(name=unique("Get"), domains=[domain])
    fetched = sdk.organizations.get_organization(created.id)
    assert fetched.id == created.id
    assert fetched.name == created.name
    assert [d.domain for d in fetched.domains] == [domain]
    assert fetched.created_at == created.created_at
    with pytest.raises(NotFoundError) as caught:
        sdk.organizations.get_organization("org_01DOESNOTEXIST")
    assert caught.value.status_code == 404


def test_get_organization_by_external_id(sdk) -> None:
    external_id = unique("ext")
    created = sdk.organizations.create_organization(name=unique("Ext"), external_id=external_id)
    fetched = sdk.organizations.get_organization_by_external_id(external_id)
    assert fetched.id == created.id
    assert fetched.external_id == external_id
    with pytest.raises(NotFoundError):
        sdk.organizations.get_organization_by_external_id(unique("missing"))


def test_list_organizations_by_domains(sdk) -> None:
    d1, d2, d3 = _domain(), _domain(), _domain()
    a = sdk.organizations.create_organization(name=unique("A"), domains=[d1])
    b = sdk.organizations.create_organization(name=unique("B"), domains=[d2])
    sdk.organizations.create_organization(name=unique("C"), domains=[d3])
    # Two domains are sent comma-joined in one parameter (DESIGN §5).
    page = sdk.organizations.list_organizations(domains=[d1, d2], limit=10)
    assert {o.id for o in page.data} == {a.id, b.id}
    assert [o.id for o in page.data] == [b.id, a.id]  # desc by creation
    only = sdk.organizations.list_organizations(domains=[d3.upper()])
    assert [o.domains[0].domain for o in only.data] == [d3]


def test_list_organizations_search(sdk) -> None:
    tag = uuid.uuid4().hex[:8]
    first = sdk.organizations.create_organization(name=f"Searchable {tag} One")
    second = sdk.organizations.create_organization(name=f"searchable {tag} two")
    sdk.organizations.create_organization(name=unique("Unrelated"))
    page = sdk.organizations.list_organizations(search=f"SEARCHABLE {tag}")
    assert [o.id for o in page.data] == [second.id, first.id]
    asc = sdk.organizations.list_organizations(search=tag, order="asc")
    assert [o.id for o in asc.data] == [first.id, second.id]
    assert sdk.organizations.list_organizations(search=unique("nothing")).data == []


def test_list_organizations_paging(sdk) -> None:
    tag = uuid.uuid4().hex[:8]
    created = [sdk.organizations.create_organization(name=f"Paged {tag} {i}") for i in range(5)]
    page = sdk.organizations.list_organizations(search=tag, limit=2, order="asc")
    assert [o.id for o in page.data] == [o.id for o in created[:2]]
    assert page.list_metadata.after == created[1].id
    assert [o.id for o in page.auto_paging_iter()] == [o.id for o in created]


def test_update_organization(sdk) -> None:
    old_domain, new_domain = _domain(), _domain()
    created = sdk.organizations.create_organization(
        name=unique("Old"), domains=[old_domain], metadata={"a": "1"}
    )
    new_name = unique("New")
    external_id = unique("ext")
    updated = sdk.organizations.update_organization(
        created.id,
        name=new_name,
        domains=[new_domain],
        external_id=external_id,
        metadata={"b": "2"},
    )
    assert updated.id == created.id
    assert updated.name == new_name
    assert [d.domain for d in updated.domains] == [new_domain]
    assert updated.external_id == external_id
    assert updated.metadata == {"b": "2"}
    assert updated.updated_at >= created.updated_at
    # Fields not given are kept.
    again = sdk.organizations.update_organization(created.id, name=unique("Newer"))
    assert again.external_id == external_id
    assert [d.domain for d in again.domains] == [new_domain]
    assert again.metadata == {"b": "2"}
    fetched = sdk.organizations.get_organization(created.id)
    assert fetched.name == again.name
    # external_id explicitly set to None clears it.
    cleared = sdk.organizations.update_organization(created.id, external_id=None)
    assert cleared.external_id is None


def test_update_unknown_organization_is_not_found(sdk) -> None:
    with pytest.raises(NotFoundError):
        sdk.organizations.update_organization("org_01DOESNOTEXIST", name="x")


def test_delete_organization(sdk) -> None:
    org = sdk.organizations.create_organization(name=unique("Doomed"), domains=[_domain()])
    assert sdk.organizations.delete_organization(org.id) is None
    with pytest.raises(NotFoundError) as caught:
        sdk.organizations.get_organization(org.id)
    assert caught.value.status_code == 404
    with pytest.raises(NotFoundError):
        sdk.organizations.delete_organization(org.id)


def test_delete_organization_with_members_and_roles(sdk) -> None:
    org = sdk.organizations.create_organization(name=unique("Full"))
    user = sdk.user_management.create_user(email=f"{unique('u')}@example.com")
    membership = sdk.organization_membership.create_organization_membership(
        user_id=user.id, organization_id=org.id
    )
    sdk.authorization.create_organization_role(org.id, name="Custom")
    sdk.organizations.delete_organization(org.id)
    with pytest.raises(NotFoundError):
        sdk.organization_membership.get_organization_membership(membership.id)
    assert sdk.user_management.get_user(user.id).id == user.id  # the user stays
