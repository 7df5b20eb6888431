"""Recompute a batch of memberships with set-based SQL (the job path; DESIGN §4).

Same semantics as ``recompute.recompute`` (a test checks they agree), without ORM objects:
the batch's rows are read under lock with their effective and API roles, the IdP inputs
are loaded, the pure resolver runs in memory, then each kind of write is one statement
over the changed memberships only: role rows replaced, memberships updated, audit rows and
``organization_membership.updated`` events inserted.

PostgreSQL (production, where jobs touch a million rows) gets statements shaped like the
bare-SQL floor of ``bench/role_deletion.py``: rows travel as a few array parameters that
``unnest`` turns back into rows; writes that share their values (every membership moved
from one role to the same default, say) are one ``UPDATE ... WHERE id = ANY(:ids)``;
event bodies are built by the server from the locked rows. Parameters are sent in binary
through the session's own psycopg connection (same transaction): a text-format array
escapes each element with a regex, which costs more than the statement. An executemany
would be one server round of bind and execute per row. SQLite (the embedded default,
small) keeps portable ``executemany`` statements.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import (
    Table,
    bindparam,
    delete,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from idp_sync.db import is_postgres, utcnow
from idp_sync.events.models import Event
from idp_sync.ids import new_ids
from idp_sync.memberships.models import (
    MembershipApiRole,
    MembershipAudit,
    MembershipRole,
    OrganizationMembership,
)
from idp_sync.memberships.recompute import RoleCatalog, idp_inputs
from idp_sync.rbac.resolver import MembershipInput, resolve
from idp_sync.tasks import EVENTS_WRITTEN_KEY
from idp_sync.wire import iso

OM = cast(Table, OrganizationMembership.__table__)
ROLES = cast(Table, MembershipRole.__table__)
API_ROLES = cast(Table, MembershipApiRole.__table__)
AUDIT = cast(Table, MembershipAudit.__table__)
EVENTS = cast(Table, Event.__table__)
UPDATED = "organization_membership.updated"


class Change:
    """One membership's resolution: new provenance and, when they changed, new roles."""

    __slots__ = ("after", "before", "id", "organization_id", "provenance", "role_ids", "row")

    def __init__(
        self,
        membership_id: str,
        organization_id: str,
        provenance: dict[str, Any],
        before: list[str],
        after: list[str],
        role_ids: list[str],
        row: Any = None,
    ) -> None:
        self.id, self.organization_id, self.row = membership_id, organization_id, row
        self.provenance, self.role_ids = provenance, role_ids
        self.before, self.after = before, after

    @property
    def changed(self) -> bool:
        return self.before != self.after


def recompute_ids(
    session: Session, ids: Sequence[str], catalog: RoleCatalog, *, reason: str
) -> int:
    """Lock, resolve and write the memberships ``ids``; returns how many changed roles."""
    return write(session, plan(session, ids, catalog), reason=reason)


def plan(session: Session, ids: Sequence[str], catalog: RoleCatalog) -> list[Change]:
    """Lock the memberships ``ids`` and resolve them: what ``write`` will write.

    The two halves are apart so that a job can resolve its next batch (client CPU) while
    the server writes the previous one, on two connections (``jobs.services``)."""
    if not ids:
        return []
    postgres = is_postgres(session)
    batch = _read_postgres(session, ids) if postgres else _read_portable(session, ids)
    catalog.prefetch(organization_id for _, organization_id, _, _, _ in batch)
    inputs = idp_inputs(session, ids)
    changes = []
    # The resolver is pure (its result depends on its inputs only, property-tested), and a
    # bulk change gives most memberships the same inputs: resolve each distinct one once.
    resolved: dict[tuple[Any, ...], tuple[list[str], dict[str, Any]]] = {}
    for membership_id, organization_id, effective, api, row in batch:
        org = catalog.for_org(organization_id)
        directory, sso = inputs.get(membership_id, (None, None))
        key = (id(org), tuple(api), directory, sso)
        found = resolved.get(key)
        if found is None:
            result = resolve(org.state, MembershipInput(key[1], directory, sso))
            provenance = {
                "source": result.source,
                "uses_default": result.uses_default,
                "matched_groups": list(result.matched_groups),
                "mapping_ids": list(result.mapping_ids),
            }
            found = resolved[key] = (list(result.roles), provenance)
        after, provenance = found
        changes.append(
            Change(
                membership_id,
                organization_id,
                provenance,
                effective,
                after,
                [org.by_slug[slug].id for slug in after] if effective != after else [],
                row,
            )
        )
    return changes


def write(session: Session, changes: list[Change], *, reason: str) -> int:
    """Write the planned ``changes`` in the transaction that locked them (``plan``);
    returns how many memberships changed roles."""
    if not changes:
        return 0
    now = utcnow()
    if is_postgres(session):
        count = _write_postgres(session, changes, now, reason)
    else:
        count = _write_portable(session, changes, now, reason)
    if count:
        session.info[EVENTS_WRITTEN_KEY] = True
    return count


# --- PostgreSQL ------------------------------------------------------------------------


def _sql(text: str) -> str:
    return " ".join(text.split())


def _driver(session: Session) -> Any:
    """The session's psycopg connection, inside the session's transaction."""
    return session.connection().connection.driver_connection


@contextlib.contextmanager
def _as_sqlalchemy_errors(sql: str) -> Iterator[None]:
    """Driver errors raised as SQLAlchemy's (``OperationalError`` for a deadlock or a lost
    connection...), as if the statement had gone through the session: ``DbTask`` retries
    those and a job resumes at its cursor, instead of failing on a raw psycopg error."""
    try:
        yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def _pg_execute(session: Session, sql: str, params: dict[str, Any]) -> None:
    """Run ``sql`` (``%(name)b`` binary parameters) on the session's connection.

    ``prepare=False``: a prepared statement gets a generic plan after a few runs, in which
    ``= ANY(:ids)`` is a per-row linear search instead of a hashed or indexed lookup."""
    with _as_sqlalchemy_errors(sql), _driver(session).cursor() as cursor:
        cursor.execute(sql, params, prepare=False)


def _pg_fetch(session: Session, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with _as_sqlalchemy_errors(sql), _driver(session).cursor() as cursor:
        cursor.execute(sql, params, prepare=False)
        return cast(list[tuple[Any, ...]], cursor.fetchall())


# Role slugs come back joined by commas, which the slug grammar excludes: splitting a
# string is much cheaper for the client than parsing two array values per row.
_PG_LOCK = _sql(
    """
    SELECT om.id, om.organization_id,
        (SELECT string_agg(r.role_slug, ',' ORDER BY r.position)
         FROM organization_membership_roles r WHERE r.membership_id = om.id),
        (SELECT string_agg(a.role_slug, ',' ORDER BY a.position)
         FROM organization_membership_api_roles a WHERE a.membership_id = om.id)
    FROM organization_memberships om
    WHERE om.id = ANY(CAST(%(ids)b AS text[])) AND om.id BETWEEN %(lo)b AND %(hi)b
    ORDER BY om.id
    FOR UPDATE OF om
    """
)


def _read_postgres(session: Session, ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """The batch's rows, locked, with effective and API role slugs: one statement."""
    return [
        (mid, org, effective.split(",") if effective else [], api.split(",") if api else [], None)
        for mid, org, effective, api in _pg_fetch(session, _PG_LOCK, _ids(ids))
    ]


def _ids(ids: Sequence[str]) -> dict[str, Any]:
    """An id-list parameter with its bounds. ``id = ANY(:ids)`` alone can make the planner
    scan the whole table (it cannot see which part of it 5,000 ids cover); the bounds
    give it the index range, as the bare-SQL floor's batches by id range have."""
    return {"ids": list(ids), "lo": min(ids), "hi": max(ids)}


# Provenance is compared by the server (``IS DISTINCT FROM``): a membership whose roles did
# not change is rewritten only if its provenance did, and keeps its updated_at.
_PG_SET_MEMBERSHIPS_ALIKE = _sql(
    """
    UPDATE organization_memberships
    SET role_source = %(source)b, uses_default = %(uses_default)b,
        provenance = CAST(%(provenance)b AS jsonb),
        updated_at = CASE WHEN %(touched)b THEN %(now)b ELSE updated_at END
    WHERE id = ANY(CAST(%(ids)b AS text[])) AND id BETWEEN %(lo)b AND %(hi)b
      AND (%(touched)b OR provenance IS DISTINCT FROM CAST(%(provenance)b AS jsonb))
    """
)
_PG_SET_MEMBERSHIPS_EACH = _sql(
    """
    UPDATE organization_memberships AS om
    SET role_source = v.source, uses_default = v.uses_default,
        provenance = CAST(v.provenance AS jsonb),
        updated_at = CASE WHEN v.touched THEN %(now)b ELSE om.updated_at END
    FROM unnest(CAST(%(ids)b AS text[]), CAST(%(sources)b AS text[]),
                CAST(%(uses)b AS boolean[]), CAST(%(provenances)b AS text[]),
                CAST(%(touched)b AS boolean[]))
         AS v(id, source, uses_default, provenance, touched)
    WHERE om.id = v.id
      AND (v.touched OR om.provenance IS DISTINCT FROM CAST(v.provenance AS jsonb))
    """
)
# One role for another (the membership's only role row; single-role mode, the usual bulk
# change): an UPDATE in place, as the bare-SQL floor does; anything else is replaced
# (delete, insert).
_PG_SWAP_ROLE = _sql(
    """
    UPDATE organization_membership_roles
    SET role_id = %(role_id)b, role_slug = %(slug)b, position = 0
    WHERE membership_id = ANY(CAST(%(ids)b AS text[])) AND membership_id BETWEEN %(lo)b AND %(hi)b
    """
)
_PG_DROP_ROLES = _sql(
    """
    DELETE FROM organization_membership_roles
    WHERE membership_id = ANY(CAST(%(ids)b AS text[])) AND membership_id BETWEEN %(lo)b AND %(hi)b
    """
)
_PG_ADD_ROLES = _sql(
    """
    INSERT INTO organization_membership_roles (membership_id, role_id, role_slug, position)
    SELECT * FROM unnest(CAST(%(ids)b AS text[]), CAST(%(role_ids)b AS text[]),
                         CAST(%(slugs)b AS text[]), CAST(%(positions)b AS integer[]))
    """
)
_PG_ADD_AUDIT = _sql(
    """
    INSERT INTO organization_membership_audit
        (membership_id, organization_id, before_roles, after_roles, source, reason, created_at)
    SELECT v.id, v.organization_id, CAST(v.before AS jsonb), CAST(v.after AS jsonb),
           v.source, %(reason)b, %(now)b
    FROM unnest(CAST(%(ids)b AS text[]), CAST(%(organizations)b AS text[]),
                CAST(%(befores)b AS text[]), CAST(%(afters)b AS text[]),
                CAST(%(sources)b AS text[]))
         AS v(id, organization_id, before, after, source)
    """
)
# The data is ``serializers.event_data`` built by the server from the locked row (a test
# checks the two agree); datetimes as ``wire.iso`` writes them.
_PG_ADD_EVENTS = _sql(
    """
    INSERT INTO events (id, event, data, organization_id, created_at)
    SELECT v.id, %(event)b,
        jsonb_build_object(
            'object', 'organization_membership',
            'id', om.id,
            'user_id', om.user_id,
            'organization_id', om.organization_id,
            'status', om.status,
            'role', CAST(v.roles AS jsonb) -> 0,
            'roles', CAST(v.roles AS jsonb),
            'directory_managed', om.directory_managed,
            'custom_attributes', CASE WHEN jsonb_typeof(om.custom_attributes) = 'object'
                                      THEN om.custom_attributes ELSE '{}'::jsonb END,
            'created_at', to_char(om.created_at AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'updated_at', %(updated_at)b),
        om.organization_id, %(now)b
    FROM unnest(CAST(%(ids)b AS text[]), CAST(%(memberships)b AS text[]),
                CAST(%(roles)b AS text[])) AS v(id, membership_id, roles)
    JOIN organization_memberships om ON om.id = v.membership_id
    """
)
_MAX_ALIKE_GROUPS = 8  # more distinct provenances than this: one unnest statement instead


class _Json:
    """``json.dumps`` memoised by value: a batch repeats a handful of role lists."""

    def __init__(self) -> None:
        self._cache: dict[Any, str] = {}

    def __call__(self, key: Any, value: Any) -> str:
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = json.dumps(value)
        return found


def _write_postgres(session: Session, changes: list[Change], now: Any, reason: str) -> int:
    """The batch's writes in pipeline mode: sent without waiting for each result, so the
    server executes one while the next one's parameters are being built."""
    with _as_sqlalchemy_errors("pipeline"), _driver(session).pipeline():
        return _write_postgres_statements(session, changes, now, reason)


def _write_postgres_statements(
    session: Session, changes: list[Change], now: Any, reason: str
) -> int:
    dumps = _Json()
    # Changes that resolved alike share one provenance dict (recompute_ids): key by identity.
    provenances = [dumps(("p", id(c.provenance)), c.provenance) for c in changes]
    _pg_set_memberships(session, changes, provenances, now)
    changed = [c for c in changes if c.changed]
    if not changed:
        return 0
    swaps: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    replaced = []
    for c in changed:
        if len(c.before) == 1 and len(c.after) == 1:
            swaps[(c.role_ids[0], c.after[0])].append(c.id)
        else:
            replaced.append(c)
    for (role_id, slug), ids in swaps.items():
        _pg_execute(session, _PG_SWAP_ROLE, {"role_id": role_id, "slug": slug, **_ids(ids)})
    if replaced:
        _pg_execute(session, _PG_DROP_ROLES, _ids([c.id for c in replaced]))
        _pg_execute(
            session,
            _PG_ADD_ROLES,
            {
                "ids": [c.id for c in replaced for _ in c.after],
                "role_ids": [role_id for c in replaced for role_id in c.role_ids],
                "slugs": [slug for c in replaced for slug in c.after],
                "positions": [position for c in replaced for position in range(len(c.after))],
            },
        )
    ids = [c.id for c in changed]
    _pg_execute(
        session,
        _PG_ADD_AUDIT,
        {
            "reason": reason,
            "now": now,
            "ids": ids,
            "organizations": [c.organization_id for c in changed],
            "befores": [dumps(("l", *c.before), c.before) for c in changed],
            "afters": [dumps(("l", *c.after), c.after) for c in changed],
            "sources": [c.provenance["source"] for c in changed],
        },
    )
    _pg_execute(
        session,
        _PG_ADD_EVENTS,
        {
            "event": UPDATED,
            "now": now,
            "updated_at": iso(now),
            "ids": new_ids("event", len(changed)),
            "memberships": ids,
            "roles": [dumps(("r", *c.after), [{"slug": s} for s in c.after]) for c in changed],
        },
    )
    return len(changed)


def _pg_set_memberships(
    session: Session, changes: list[Change], provenances: list[str], now: Any
) -> None:
    groups: defaultdict[tuple[str, bool], list[Change]] = defaultdict(list)
    for change, provenance in zip(changes, provenances, strict=True):
        groups[(provenance, change.changed)].append(change)
    if len(groups) <= _MAX_ALIKE_GROUPS:
        for (provenance, touched), members in groups.items():
            first = members[0].provenance
            _pg_execute(
                session,
                _PG_SET_MEMBERSHIPS_ALIKE,
                {
                    "source": first["source"],
                    "uses_default": first["uses_default"],
                    "provenance": provenance,
                    "touched": touched,
                    "now": now,
                    **_ids([c.id for c in members]),
                },
            )
        return
    _pg_execute(
        session,
        _PG_SET_MEMBERSHIPS_EACH,
        {
            "now": now,
            "ids": [c.id for c in changes],
            "sources": [c.provenance["source"] for c in changes],
            "uses": [c.provenance["uses_default"] for c in changes],
            "provenances": provenances,
            "touched": [c.changed for c in changes],
        },
    )


# --- Portable (SQLite): executemany ----------------------------------------------------


def _read_portable(session: Session, ids: Sequence[str]) -> list[tuple[Any, ...]]:
    rows = (
        session.execute(select(OM).where(OM.c.id.in_(ids)).order_by(OM.c.id).with_for_update())
        .mappings()
        .all()
    )
    parts = [
        select(
            literal(kind).label("kind"), table.c.membership_id, table.c.position, table.c.role_slug
        ).where(table.c.membership_id.in_(ids))
        for kind, table in (("effective", ROLES), ("api", API_ROLES))
    ]
    found: dict[str, defaultdict[str, list[str]]] = {
        "effective": defaultdict(list),
        "api": defaultdict(list),
    }
    query = union_all(*parts).order_by("kind", "membership_id", "position")
    for kind, membership_id, _position, slug in session.execute(query).all():
        found[kind][membership_id].append(slug)
    return [
        (
            row["id"],
            row["organization_id"],
            found["effective"][row["id"]],
            found["api"][row["id"]],
            row,
        )
        for row in rows
    ]


_SET_PROVENANCE = (
    update(OM)
    .where(OM.c.id == bindparam("b_id"))
    .values(
        role_source=bindparam("b_source"),
        uses_default=bindparam("b_uses_default"),
        provenance=bindparam("b_provenance"),
    )
)


def _provenance_params(change: Change) -> dict[str, Any]:
    return {
        "b_id": change.id,
        "b_source": change.provenance["source"],
        "b_uses_default": change.provenance["uses_default"],
        "b_provenance": change.provenance,
    }


def _write_portable(session: Session, changes: list[Change], now: Any, reason: str) -> int:
    provenance_only = [c for c in changes if not c.changed and c.row["provenance"] != c.provenance]
    if provenance_only:
        session.execute(_SET_PROVENANCE, [_provenance_params(c) for c in provenance_only])
    changed = [c for c in changes if c.changed]
    if not changed:
        return 0
    session.execute(delete(ROLES).where(ROLES.c.membership_id.in_([c.id for c in changed])))
    session.execute(
        insert(ROLES),
        [
            {"membership_id": c.id, "role_id": role_id, "role_slug": slug, "position": position}
            for c in changed
            for position, (slug, role_id) in enumerate(zip(c.after, c.role_ids, strict=True))
        ],
    )
    session.execute(
        _SET_PROVENANCE.values(updated_at=bindparam("b_updated_at")),
        [_provenance_params(c) | {"b_updated_at": now} for c in changed],
    )
    session.execute(
        insert(AUDIT),
        [
            {
                "membership_id": c.id,
                "organization_id": c.organization_id,
                "before_roles": c.before,
                "after_roles": c.after,
                "source": c.provenance["source"],
                "reason": reason,
                "created_at": now,
            }
            for c in changed
        ],
    )
    session.execute(
        insert(EVENTS),
        [
            {
                "id": event_id,
                "event": UPDATED,
                "data": _event_data(c.row, c.after, now),
                "organization_id": c.organization_id,
                "created_at": now,
            }
            for c, event_id in zip(changed, new_ids("event", len(changed)), strict=True)
        ],
    )
    return len(changed)


def _event_data(row: Any, roles: list[str], now: Any) -> dict[str, Any]:
    """``OrganizationMembershipUpdatedData``: as ``serializers.event_data`` writes it."""
    slim = [{"slug": slug} for slug in roles]
    return {
        "object": "organization_membership",
        "id": row["id"],
        "user_id": row["user_id"],
        "organization_id": row["organization_id"],
        "status": row["status"],
        "role": slim[0] if slim else None,
        "roles": slim,
        "directory_managed": row["directory_managed"],
        "custom_attributes": dict(row["custom_attributes"] or {}),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(now),
    }
