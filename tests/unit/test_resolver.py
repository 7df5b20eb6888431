"""Property and example tests for the effective-role resolver (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idp_sync.rbac.resolver import (
    GroupMapping,
    IdpInput,
    MembershipInput,
    Resolution,
    RoleState,
    effective_default,
    order_by_priority,
    resolve,
)

ROLES = [f"r{i}" for i in range(8)]
GHOSTS = ["ghost-a", "ghost-b"]  # slugs that do not exist for the organization
GROUPS = [f"g{i}" for i in range(10)]

PROPS = settings(max_examples=200, deadline=None)


# --------------------------------------------------------------------------- strategies
# Subsets are drawn as bit masks and mapping (group, role) pairs as one integer each:
# far cheaper to generate than nested sampled_from draws, and they still shrink well.


def subset(items: list[str], mask: int) -> list[str]:
    return [item for i, item in enumerate(items) if mask >> i & 1]


@st.composite
def role_states(
    draw: st.DrawFn,
    multiple: bool | None = None,
    unlisted: bool = False,
) -> RoleState:
    """A consistent RoleState: priority_order is a permutation of the role set, the env
    default is assignable, some other roles may be being deleted. With ``unlisted`` some
    roles may be left out of priority_order."""
    roles = subset(ROLES, draw(st.integers(1, 2 ** len(ROLES) - 1)))
    order = list(draw(st.permutations(roles)))
    default_role = draw(st.sampled_from(roles))
    deleting = set(subset(roles, draw(st.integers(0, 2 ** len(roles) - 1)))) - {default_role}
    if unlisted:
        dropped = set(subset(roles, draw(st.integers(0, 2 ** len(roles) - 1))))
        order = [r for r in order if r not in dropped]
    org_default = draw(st.none() | st.sampled_from(roles + GHOSTS))
    return RoleState(
        priority_order=tuple(order),
        assignable=frozenset(roles) - deleting,
        default_role=default_role,
        org_default_role=org_default,
        multiple_roles=draw(st.booleans()) if multiple is None else multiple,
    )


@st.composite
def idp_inputs(draw: st.DrawFn, min_mappings: int = 0, prefix: str = "grm") -> IdpInput:
    targets = ROLES + GHOSTS
    codes = draw(
        st.lists(st.integers(0, len(GROUPS) * len(targets) - 1), min_size=min_mappings, max_size=12)
    )
    mappings = tuple(
        GroupMapping(f"{prefix}_{i:02d}", GROUPS[c // len(targets)], targets[c % len(targets)])
        for i, c in enumerate(codes)
    )
    groups = frozenset(subset(GROUPS, draw(st.integers(0, 2 ** len(GROUPS) - 1))))
    return IdpInput(source_id=f"{prefix}_src", groups=groups, mappings=mappings)


api_roles_st = st.lists(st.sampled_from(ROLES + GHOSTS), max_size=6).map(tuple)


@st.composite
def members(draw: st.DrawFn) -> MembershipInput:
    return MembershipInput(
        api_roles=draw(api_roles_st),
        directory=draw(st.none() | idp_inputs(prefix="dir")),
        sso=draw(st.none() | idp_inputs(prefix="sso")),
    )


# --------------------------------------------------------------------------- reference helpers


def rank_key(state: RoleState) -> Callable[[str], tuple[int, str]]:
    """Reference ordering: position in priority_order, unlisted roles last by slug."""
    order = list(state.priority_order)
    return lambda r: (order.index(r) if r in order else len(order), r)


def matched_roles(state: RoleState, idp: IdpInput) -> set[str]:
    return {
        m.role_slug
        for m in idp.mappings
        if m.group in idp.groups and m.role_slug in state.assignable
    }


def expected_default(state: RoleState) -> str:
    if state.org_default_role is not None and state.org_default_role in state.assignable:
        return state.org_default_role
    return state.default_role


# --------------------------------------------------------------------------- properties


@PROPS
@given(
    state=role_states(),
    idp=idp_inputs(min_mappings=1),
    as_directory=st.booleans(),
    api=api_roles_st,
)
def test_idp_source_with_mappings_always_beats_api(
    state: RoleState, idp: IdpInput, as_directory: bool, api: tuple[str, ...]
) -> None:
    member = (
        MembershipInput(api_roles=api, directory=idp)
        if as_directory
        else MembershipInput(api_roles=api, sso=idp)
    )
    res = resolve(state, member)
    assert res.source == ("directory" if as_directory else "sso")
    matched = matched_roles(state, idp)
    if matched:
        assert set(res.roles) <= matched
    else:
        assert res.roles == (expected_default(state),)


@PROPS
@given(state=role_states(), member=members())
def test_api_roles_survive_when_idp_source_removed(
    state: RoleState, member: MembershipInput
) -> None:
    api_before = member.api_roles
    resolve(state, member)
    assert member.api_roles == api_before  # input untouched

    res = resolve(state, replace(member, directory=None, sso=None))
    kept = sorted({r for r in member.api_roles if r in state.assignable}, key=rank_key(state))
    if kept:
        assert res.source == "api"
        assert res.uses_default is False
        expected = tuple(kept) if state.multiple_roles else (kept[0],)
        assert res.roles == expected
    else:
        assert res.source == "default"
        assert res.uses_default is True
        assert res.roles == (expected_default(state),)
    assert res.matched_groups == ()
    assert res.mapping_ids == ()


@PROPS
@given(state=role_states(multiple=False), idp=idp_inputs(min_mappings=1))
def test_single_role_mode_returns_highest_priority_matched(state: RoleState, idp: IdpInput) -> None:
    res = resolve(state, MembershipInput(directory=idp))
    assert len(res.roles) == 1
    matched = matched_roles(state, idp)
    if matched:
        assert res.roles[0] == min(matched, key=rank_key(state))
        assert res.uses_default is False
    else:
        assert res.uses_default is True


@PROPS
@given(state=role_states(multiple=True, unlisted=True), idp=idp_inputs(min_mappings=1))
def test_multiple_roles_mode_returns_all_matched_in_priority_order(
    state: RoleState, idp: IdpInput
) -> None:
    res = resolve(state, MembershipInput(sso=idp))
    matched = matched_roles(state, idp)
    if matched:
        assert set(res.roles) == matched
        assert len(res.roles) == len(matched)  # deduplicated
        assert list(res.roles) == sorted(matched, key=rank_key(state))
        assert res.uses_default is False
    else:
        assert res.roles == (expected_default(state),)
        assert res.uses_default is True


@PROPS
@given(state=role_states(), member=members())
def test_non_assignable_role_never_returned(state: RoleState, member: MembershipInput) -> None:
    res = resolve(state, member)
    assert res.roles, "roles is never empty"
    for role in res.roles:
        assert role in state.assignable


@PROPS
@given(state=role_states(), member=members())
def test_env_default_is_last_resort_even_if_not_assignable(
    state: RoleState, member: MembershipInput
) -> None:
    # Break the system guarantee on purpose: the env default is not assignable.
    broken = replace(state, assignable=state.assignable - {state.default_role})
    res = resolve(broken, member)
    for role in res.roles:
        assert role in broken.assignable or (
            res.uses_default and res.roles == (broken.default_role,)
        )


@PROPS
@given(state=role_states(), idp=idp_inputs(min_mappings=1), as_directory=st.booleans())
def test_nothing_mapped_gives_default(state: RoleState, idp: IdpInput, as_directory: bool) -> None:
    mapped_groups = {m.group for m in idp.mappings}
    idp = replace(idp, groups=idp.groups - mapped_groups)  # user in no mapped group
    member = MembershipInput(directory=idp) if as_directory else MembershipInput(sso=idp)
    res = resolve(state, member)
    assert res == Resolution(
        roles=(expected_default(state),),
        source="directory" if as_directory else "sso",
        uses_default=True,
        matched_groups=(),
        mapping_ids=(),
    )


@PROPS
@given(state=role_states())
def test_no_source_at_all_gives_default(state: RoleState) -> None:
    res = resolve(state, MembershipInput())
    assert res == Resolution((expected_default(state),), "default", True, (), ())
    assert effective_default(state) == expected_default(state)


@PROPS
@given(
    state=role_states(),
    directory=idp_inputs(min_mappings=1, prefix="dir"),
    sso=idp_inputs(min_mappings=1, prefix="sso"),
    api=api_roles_st,
)
def test_directory_beats_sso(
    state: RoleState, directory: IdpInput, sso: IdpInput, api: tuple[str, ...]
) -> None:
    res = resolve(state, MembershipInput(api_roles=api, directory=directory, sso=sso))
    assert res.source == "directory"
    assert res == resolve(state, MembershipInput(directory=directory))
    assert all(mid.startswith("dir_") for mid in res.mapping_ids)


@PROPS
@given(state=role_states(), member=members(), data=st.data())
def test_idp_without_mappings_does_not_apply(
    state: RoleState, member: MembershipInput, data: st.DataObject
) -> None:
    empty = IdpInput("dir_empty", frozenset(GROUPS), ())
    with_empty_dir = replace(member, directory=empty)
    without_dir = replace(member, directory=None)
    assert resolve(state, with_empty_dir) == resolve(state, without_dir)
    if data.draw(st.booleans()):
        no_idp = replace(member, directory=empty, sso=replace(empty, source_id="sso_empty"))
        assert resolve(state, no_idp).source in ("api", "default")


@PROPS
@given(
    state=role_states(unlisted=True),
    idp=idp_inputs(min_mappings=1),
    as_directory=st.booleans(),
    data=st.data(),
)
def test_determinism_under_permutation_and_duplicates(
    state: RoleState, idp: IdpInput, as_directory: bool, data: st.DataObject
) -> None:
    def member(i: IdpInput) -> MembershipInput:
        return (
            MembershipInput(api_roles=("r0",), directory=i)
            if as_directory
            else (MembershipInput(api_roles=("r0",), sso=i))
        )

    base = resolve(state, member(idp))
    permuted = data.draw(st.permutations(idp.mappings))
    dups = data.draw(st.lists(st.sampled_from(idp.mappings), max_size=5))
    shuffled = tuple(data.draw(st.permutations(list(permuted) + dups)))
    groups = frozenset(reversed(sorted(idp.groups)))
    other = replace(idp, mappings=shuffled, groups=groups)
    assert resolve(state, member(other)) == base
    # Fresh but equal RoleState / strings must not matter either.
    twin = replace(state, priority_order=tuple(list(state.priority_order)))
    assert resolve(twin, member(other)) == base


@PROPS
@given(state=role_states(unlisted=True), member=members())
def test_provenance(state: RoleState, member: MembershipInput) -> None:
    res = resolve(state, member)
    assert list(res.matched_groups) == sorted(set(res.matched_groups))
    assert list(res.mapping_ids) == sorted(set(res.mapping_ids))
    if res.source in ("api", "default") or res.uses_default:
        assert res.matched_groups == () and res.mapping_ids == ()
        return
    idp = member.directory if res.source == "directory" else member.sso
    assert idp is not None
    by_id = {m.id: m for m in idp.mappings}
    for mid in res.mapping_ids:
        m = by_id[mid]
        assert m.group in idp.groups
        assert m.role_slug in res.roles
    # Complete: exactly the mappings (among the user's groups) that point at returned roles.
    producing = [m for m in idp.mappings if m.group in idp.groups and m.role_slug in res.roles]
    assert set(res.mapping_ids) == {m.id for m in producing}
    assert set(res.matched_groups) == {m.group for m in producing}
    # Every returned role is backed by at least one mapping.
    assert {m.role_slug for m in producing} == set(res.roles)


@PROPS
@given(
    slugs=st.lists(st.sampled_from(ROLES + GHOSTS + ["a", "zz"]), max_size=12),
    order=st.permutations(ROLES),
)
def test_order_by_priority(slugs: list[str], order: list[str]) -> None:
    out = order_by_priority(slugs, tuple(order))
    assert set(out) == set(slugs)
    assert len(out) == len(set(slugs))
    listed = [s for s in out if s in order]
    unlisted = [s for s in out if s not in order]
    assert list(out) == listed + unlisted
    assert listed == sorted(listed, key=order.index)
    assert unlisted == sorted(unlisted)
    assert order_by_priority(iter(slugs), order) == out  # list / iterator inputs agree


# --------------------------------------------------------------------------- examples


def _state(multiple: bool, **kw: object) -> RoleState:
    base: dict[str, object] = dict(
        priority_order=("admin", "billing", "editor", "member", "viewer"),
        assignable=frozenset({"admin", "billing", "editor", "member", "viewer"}),
        default_role="member",
        org_default_role=None,
        multiple_roles=multiple,
    )
    base.update(kw)
    return RoleState(**base)  # type: ignore[arg-type]


DIR = IdpInput(
    source_id="directory_01",
    groups=frozenset({"grp_eng", "grp_fin", "grp_all"}),
    mappings=(
        GroupMapping("grm_03", "grp_fin", "billing"),
        GroupMapping("grm_01", "grp_eng", "editor"),
        GroupMapping("grm_02", "grp_ops", "admin"),  # user not in grp_ops
        GroupMapping("grm_04", "grp_all", "editor"),
    ),
)


def test_example_single_role_directory() -> None:
    res = resolve(_state(False), MembershipInput(api_roles=("admin",), directory=DIR))
    assert res == Resolution(("billing",), "directory", False, ("grp_fin",), ("grm_03",))


def test_example_multiple_roles_directory() -> None:
    res = resolve(_state(True), MembershipInput(api_roles=("admin",), directory=DIR))
    assert res == Resolution(
        ("billing", "editor"),
        "directory",
        False,
        ("grp_all", "grp_eng", "grp_fin"),
        ("grm_01", "grm_03", "grm_04"),
    )


def test_example_api_roles_come_back_when_directory_unlinked() -> None:
    member = MembershipInput(api_roles=("viewer", "admin", "gone"), directory=DIR)
    assert resolve(_state(True), member).source == "directory"
    unlinked = replace(member, directory=None)
    assert resolve(_state(True), unlinked) == Resolution(("admin", "viewer"), "api", False, (), ())
    assert resolve(_state(False), unlinked).roles == ("admin",)


def test_example_being_deleted_role_is_skipped() -> None:
    state = _state(False, assignable=frozenset({"admin", "editor", "member", "viewer"}))
    res = resolve(state, MembershipInput(directory=DIR))
    assert res == Resolution(
        ("editor",), "directory", False, ("grp_all", "grp_eng"), ("grm_01", "grm_04")
    )


@pytest.mark.parametrize(
    ("org_default", "assignable", "expected"),
    [
        (None, {"member", "viewer"}, "member"),
        ("viewer", {"member", "viewer"}, "viewer"),
        ("viewer", {"member"}, "member"),  # org override being deleted
        ("viewer", set(), "member"),  # env default returned even if not listed
    ],
)
def test_example_default_fallback(
    org_default: str | None, assignable: set[str], expected: str
) -> None:
    state = _state(True, org_default_role=org_default, assignable=frozenset(assignable))
    nothing_mapped = replace(DIR, groups=frozenset({"grp_unmapped"}))
    res = resolve(state, MembershipInput(api_roles=("admin",), sso=nothing_mapped))
    assert res == Resolution((expected,), "sso", True, (), ())
    assert resolve(state, MembershipInput(api_roles=("ghost",))) == Resolution(
        (expected,), "default", True, (), ()
    )


def test_example_unlisted_roles_sort_last_by_slug() -> None:
    state = _state(
        True,
        priority_order=("editor",),
        assignable=frozenset({"editor", "zeta", "alpha", "member"}),
    )
    res = resolve(state, MembershipInput(api_roles=("zeta", "alpha", "editor", "alpha")))
    assert res.roles == ("editor", "alpha", "zeta")
