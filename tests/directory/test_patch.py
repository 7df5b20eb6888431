"""PATCH application (RFC 7644 §3.5.2) as a pure function: examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idp_sync.directory.scim.adapters import ENTRA, GENERIC, OKTA
from idp_sync.directory.scim.errors import InvalidPath, InvalidSyntax, NoTarget
from idp_sync.directory.scim.patch import PatchOp, apply_patch, parse_ops, split_members

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "ada",
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    "emails": [{"type": "work", "value": "ada@example.com", "primary": True}],
}


def test_rfc7644_3_5_2_1_add_to_multi_valued_does_not_duplicate() -> None:
    email = {"type": "home", "value": "ada@home.example"}
    once = apply_patch(USER, [PatchOp("add", "emails", [email])])
    assert apply_patch(once, [PatchOp("add", "emails", [email])]) == once
    assert once["emails"][-1] == email and USER["emails"] == once["emails"][:1]  # no mutation


def test_rfc7644_3_5_2_3_replace_complex_merges_sub_attributes() -> None:
    result = apply_patch(USER, [PatchOp("replace", "name", {"givenName": "Augusta"})])
    assert result["name"] == {"givenName": "Augusta", "familyName": "Lovelace"}


def test_attribute_names_are_case_insensitive() -> None:
    result = apply_patch(USER, [PatchOp("replace", "NAME.GIVENNAME", "A")])
    assert result["name"]["givenName"] == "A"


def test_filtered_paths() -> None:
    replaced = apply_patch(USER, [PatchOp("replace", 'emails[type eq "work"].value', "x@y.z")])
    assert replaced["emails"] == [{"type": "work", "value": "x@y.z", "primary": True}]
    created = apply_patch(USER, [PatchOp("add", 'addresses[type eq "work"].locality', "Paris")])
    assert created["addresses"] == [{"type": "work", "locality": "Paris"}]
    removed = apply_patch(USER, [PatchOp("remove", 'emails[type eq "work"]')])
    assert "emails" not in removed
    with pytest.raises(NoTarget):
        apply_patch(USER, [PatchOp("replace", 'emails[type eq "other"]', {"value": "v"})])


def test_extension_by_urn_path_and_pathless_urn_keys() -> None:
    by_path = apply_patch(USER, [PatchOp("add", f"{ENTERPRISE}:department", "Math")])
    assert by_path[ENTERPRISE] == {"department": "Math"}
    by_key = apply_patch(USER, [PatchOp("replace", None, {ENTERPRISE: {"division": "R"}})])
    assert by_key[ENTERPRISE] == {"division": "R"}
    removed = apply_patch(by_path, [PatchOp("remove", f"{ENTERPRISE}:department")])
    assert ENTERPRISE not in removed


def test_pathless_ignores_read_only_attributes() -> None:
    result = apply_patch(USER, [PatchOp("replace", None, {"id": "other", "displayName": "A"})])
    assert "id" not in result and result["displayName"] == "A"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"Operations": []}, InvalidSyntax),
        ({"Operations": [{"op": "Add", "path": "x", "value": 1}]}, InvalidSyntax),  # not adapted
        ({"Operations": [{"op": "add", "path": "emails[type eq", "value": 1}]}, None),
    ],
)
def test_parse_ops_validates(body, error) -> None:
    if error is None:
        ops = parse_ops(body)
        with pytest.raises(InvalidPath):
            apply_patch(USER, ops)
    else:
        with pytest.raises(error):
            parse_ops(body)


def test_adapters_normalise_quirks() -> None:
    entra = ENTRA.normalise({"Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    assert entra["Operations"] == [{"op": "replace", "path": "active", "value": False}]
    okta = OKTA.normalise(
        {"Operations": [{"op": "replace", "value": {"id": "g1", "displayName": "n"}}]}
    )
    assert okta["Operations"][0]["value"] == {"displayName": "n"}
    generic = GENERIC.normalise({"members": [{"value": "u", "$ref": None}], "schemas": []})
    assert generic["members"] == [{"value": "u"}]


def test_split_members_in_request_order() -> None:
    ops = [
        PatchOp("add", "members", [{"value": "a"}, {"value": "b"}]),
        PatchOp("remove", 'members[value eq "a"]'),
        PatchOp("replace", None, {"displayName": "x", "members": [{"value": "c"}]}),
        PatchOp("add", "members", [{"value": "d"}]),
    ]
    rest, delta = split_members(ops)
    assert rest == [PatchOp("replace", None, {"displayName": "x"})]
    assert (delta.clear, list(delta.add), delta.remove) == (True, ["c", "d"], set())


# --- properties ---------------------------------------------------------------------------

names = st.sampled_from(["displayName", "title", "nickName", "userType", "locale"])
scalars = st.one_of(st.text(max_size=5), st.booleans(), st.integers(-3, 3))
emails = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["work", "home"]), "value": st.text(max_size=4)}
    ),
    max_size=3,
)
op_strategy = st.one_of(
    st.builds(PatchOp, st.sampled_from(["add", "replace"]), names, scalars),
    st.builds(PatchOp, st.just("remove"), names),
    st.builds(PatchOp, st.sampled_from(["add", "replace"]), st.just("emails"), emails),
    st.builds(
        PatchOp,
        st.sampled_from(["add", "replace"]),
        st.sampled_from(['emails[type eq "work"].value', 'emails[type eq "home"].value']),
        st.text(max_size=4),
    ),
    st.builds(PatchOp, st.just("remove"), st.sampled_from(['emails[type eq "work"]', "emails"])),
    st.builds(
        PatchOp,
        st.sampled_from(["add", "replace"]),
        st.just(None),
        st.dictionaries(
            st.sampled_from(["profileUrl", "name.givenName", "name.familyName"]),
            scalars,
            max_size=3,
        ),
    ),
    st.builds(
        PatchOp,
        st.sampled_from(["add", "replace"]),
        st.just(f"{ENTERPRISE}:department"),
        st.text(max_size=4),
    ),
)


def _target(op: PatchOp) -> str:
    """The top-level attribute an operation writes (path-less ops write their own keys)."""
    if op.path is None:
        return "(path-less)"
    return ENTERPRISE if op.path.startswith("urn:") else op.path.split("[")[0].split(".")[0]


@settings(max_examples=300, deadline=None)
@given(st.lists(op_strategy, min_size=1, max_size=6, unique_by=_target))
def test_applying_the_same_patch_twice_gives_the_same_resource(ops) -> None:
    """As IdPs send them, one operation per attribute (Okta and Entra ID both do): a PATCH
    whose later operation rewrites what an earlier one added to the same multi-valued
    attribute is not idempotent under RFC 7644 semantics, for any server."""
    try:
        once = apply_patch(USER, ops)
    except NoTarget:
        return
    assert apply_patch(once, ops) == once


member_ids = st.lists(st.sampled_from(["u1", "u2", "u3", "u4"]), max_size=4, unique=True)


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from(["u1", "u2", "u3", "u4"])), member_ids, member_ids)
def test_member_delta_of_disjoint_add_and_remove_commutes(start, added, removed) -> None:
    """Entra ID documents that one PATCH may add some members and remove others: when the
    sets are disjoint, their order in the request does not change the final member set."""
    removed = [m for m in removed if m not in added]
    add = PatchOp("add", "members", [{"value": m} for m in added])
    remove = PatchOp("remove", "members", [{"value": m} for m in removed])

    def final(ops: list[PatchOp]) -> set[str]:
        _, delta = split_members(ops)
        return (set() if delta.clear else set(start)) - delta.remove | set(delta.add)

    assert final([add, remove]) == final([remove, add]) == (set(start) | set(added)) - set(removed)
    assert final([add, add]) == final([add])  # idempotent


def test_whole_extension_path() -> None:
    with_ext = apply_patch(USER, [PatchOp("add", ENTERPRISE, {"department": "D"})])
    assert with_ext[ENTERPRISE] == {"department": "D"}
    assert ENTERPRISE not in apply_patch(with_ext, [PatchOp("remove", ENTERPRISE)])
