"""Effective-role resolution for an organization membership (DESIGN §3).

One pure function, :func:`resolve`, with no I/O. The effective role(s) come from
the first source that applies, in this order:

1. **directory** - the membership is linked to a directory user whose directory has
   at least one group-to-role mapping: the mapped roles of the user's current groups;
   if none maps (to an assignable role), the default role.
2. **sso** - the membership has an SSO profile from a connection with at least one
   mapping: the mapped roles of the groups sent at the last sign-in; if none maps,
   the default role.
3. **api** - roles set through the API that are still assignable; if none is left,
   fall through to the default.
4. **default** - the organization's default-role override if set and assignable,
   else the environment's default role.

IdP sources always take precedence over API roles. API roles are an input and are
never modified, so they apply again when the IdP source goes away.

Single-role mode returns exactly one role, the highest-priority matched one.
Multiple-roles mode returns every matched role, deduplicated and ordered by
priority; the first is the primary role. Roles missing from ``priority_order`` sort
after all listed ones, by slug.

A role that is not assignable (being deleted, or not existing for the organization)
is never returned, except the environment default, which is the last resort even if
absent from ``assignable`` (the system guarantees it cannot be deleted).

The result depends only on the inputs' values: the order of mappings and groups, and
duplicate mappings, do not change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = [
    "GroupMapping",
    "IdpInput",
    "MembershipInput",
    "Resolution",
    "RoleState",
    "Source",
    "effective_default",
    "order_by_priority",
    "resolve",
]

Source = Literal["directory", "sso", "api", "default"]


@dataclass(frozen=True, slots=True)
class GroupMapping:
    id: str  # mapping id, e.g. "grm_01..."
    group: str  # IdP group key (directory group id, or group name/value as sent in SAML)
    role_slug: str


@dataclass(frozen=True, slots=True)
class IdpInput:
    source_id: str  # directory id or SSO connection id
    groups: frozenset[str]  # the user's current group keys
    mappings: tuple[GroupMapping, ...]  # ALL mappings of that directory / connection


@dataclass(frozen=True, slots=True)
class RoleState:
    priority_order: tuple[str, ...]  # effective order for the organization, highest first
    assignable: frozenset[str]  # role slugs usable in this organization
    default_role: str  # environment default role slug
    org_default_role: str | None  # organization override, or None
    multiple_roles: bool


@dataclass(frozen=True, slots=True)
class MembershipInput:
    api_roles: tuple[str, ...] = ()
    directory: IdpInput | None = None
    sso: IdpInput | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    roles: tuple[str, ...]  # never empty; primary first
    source: Source  # which source applied (directory/sso even when it fell back)
    uses_default: bool  # True when the roles are the default fallback (from any source)
    matched_groups: tuple[str, ...]  # sorted; groups whose mappings produced the roles
    mapping_ids: tuple[str, ...]  # sorted; ids of the mappings that produced the roles


def effective_default(state: RoleState) -> str:
    """The organization's default override if set and assignable, else the env default."""
    org_default = state.org_default_role
    if org_default is not None and org_default in state.assignable:
        return org_default
    return state.default_role


def _build_rank(priority_order: Iterable[str]) -> dict[str, int]:
    rank: dict[str, int] = {}
    for index, slug in enumerate(priority_order):
        rank.setdefault(slug, index)  # first occurrence wins if a slug is repeated
    return rank


# Keyed on the priority_order tuple; callers must not mutate the returned dict.
_cached_rank = lru_cache(maxsize=256)(_build_rank)


def order_by_priority(slugs: Iterable[str], priority_order: Sequence[str]) -> tuple[str, ...]:
    """Deduplicate ``slugs`` and order them by ``priority_order`` (highest first).

    Slugs absent from ``priority_order`` come after all listed ones, sorted by slug.
    """
    unique = set(slugs)
    if len(unique) <= 1:
        return tuple(unique)
    if isinstance(priority_order, tuple):
        rank = _cached_rank(priority_order)
    else:
        rank = _build_rank(priority_order)
    if unique <= rank.keys():
        return tuple(sorted(unique, key=rank.__getitem__))
    unlisted = len(rank)
    get = rank.get
    return tuple(sorted(unique, key=lambda slug: (get(slug, unlisted), slug)))


def _default(state: RoleState, source: Source) -> Resolution:
    return Resolution((effective_default(state),), source, True, (), ())


def _resolve_idp(state: RoleState, idp: IdpInput, source: Source) -> Resolution:
    groups = idp.groups
    assignable = state.assignable
    hits = [m for m in idp.mappings if m.group in groups and m.role_slug in assignable]
    if not hits:
        return _default(state, source)
    roles = order_by_priority({m.role_slug for m in hits}, state.priority_order)
    if not state.multiple_roles and len(roles) > 1:
        primary = roles[0]
        roles = (primary,)
        hits = [m for m in hits if m.role_slug == primary]
    return Resolution(
        roles,
        source,
        False,
        tuple(sorted({m.group for m in hits})),
        tuple(sorted({m.id for m in hits})),
    )


def resolve(state: RoleState, member: MembershipInput) -> Resolution:
    """Resolve the effective role(s) of one membership (DESIGN §3).

    First source that applies: directory (linked directory has >= 1 mapping), then SSO
    (connection has >= 1 mapping), then API roles that are still assignable, then the
    default (org override if set and assignable, else the environment default). An IdP
    source that applies but maps none of the user's groups to an assignable role yields
    the default with ``source`` set to that IdP source. Single-role mode returns the
    highest-priority matched role; multiple-roles mode returns all matched roles,
    deduplicated and priority-ordered (first = primary). Non-assignable roles are never
    returned, except the environment default as the last resort. ``matched_groups`` and
    ``mapping_ids`` (sorted) name the user's groups / mappings that produced the
    returned roles; they are empty for the ``api`` and ``default`` sources.
    """
    directory = member.directory
    if directory is not None and directory.mappings:
        return _resolve_idp(state, directory, "directory")
    sso = member.sso
    if sso is not None and sso.mappings:
        return _resolve_idp(state, sso, "sso")
    if member.api_roles:
        assignable = state.assignable
        kept = [slug for slug in member.api_roles if slug in assignable]
        if kept:
            roles = order_by_priority(kept, state.priority_order)
            if not state.multiple_roles:
                roles = roles[:1]
            return Resolution(roles, "api", False, (), ())
    return _default(state, "default")
