"""Recompute a batch of memberships with set-based SQL (the job path; DESIGN §4).

Same semantics as ``recompute.recompute`` (a test checks they agree), without ORM objects:
three reads for the batch (rows under lock, effective roles, API roles), the pure
resolver in memory, then one statement per kind of write, each an ``executemany`` over
the changed memberships only: role rows replaced, memberships updated, audit rows and
``organization_membership.updated`` events inserted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.events.models import Event
from idp_sync.ids import new_id
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


def recompute_ids(
    session: Session, ids: Sequence[str], catalog: RoleCatalog, *, reason: str
) -> int:
    """Lock, resolve and write the memberships ``ids``; returns how many changed roles."""
    if not ids:
        return 0
    rows = (
        session.execute(select(OM).where(OM.c.id.in_(ids)).order_by(OM.c.id).with_for_update())
        .mappings()
        .all()
    )
    catalog.prefetch(row["organization_id"] for row in rows)
    effective = _slugs(session, ROLES, ids)
    api = _slugs(session, API_ROLES, ids)
    inputs = idp_inputs(session, ids)
    now = utcnow()
    changed: list[dict[str, Any]] = []
    provenance_only: list[dict[str, Any]] = []
    for row in rows:
        org = catalog.for_org(row["organization_id"])
        idp = inputs.get(row["id"], (None, None))
        result = resolve(org.state, MembershipInput(tuple(api[row["id"]]), idp[0], idp[1]))
        provenance = {
            "source": result.source,
            "uses_default": result.uses_default,
            "matched_groups": list(result.matched_groups),
            "mapping_ids": list(result.mapping_ids),
        }
        before = effective[row["id"]]
        update_row = {
            "b_id": row["id"],
            "b_source": result.source,
            "b_uses_default": result.uses_default,
            "b_provenance": provenance,
        }
        if before != list(result.roles):
            changed.append(
                {
                    **update_row,
                    "row": row,
                    "before": before,
                    "after": list(result.roles),
                    "org": org,
                }
            )
        elif row["provenance"] != provenance:
            provenance_only.append(update_row)
    _write_provenance(session, provenance_only)
    _write_changes(session, changed, now, reason)
    return len(changed)


def _slugs(session: Session, table: Any, ids: Sequence[str]) -> defaultdict[str, list[str]]:
    found: defaultdict[str, list[str]] = defaultdict(list)
    query = (
        select(table.c.membership_id, table.c.role_slug)
        .where(table.c.membership_id.in_(ids))
        .order_by(table.c.membership_id, table.c.position)
    )
    for membership_id, slug in session.execute(query):
        found[membership_id].append(slug)
    return found


_SET_PROVENANCE = (
    update(OM)
    .where(OM.c.id == bindparam("b_id"))
    .values(
        role_source=bindparam("b_source"),
        uses_default=bindparam("b_uses_default"),
        provenance=bindparam("b_provenance"),
    )
)


def _write_provenance(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(_SET_PROVENANCE, rows)


def _write_changes(session: Session, changed: list[dict[str, Any]], now: Any, reason: str) -> None:
    if not changed:
        return
    changed_ids = [c["b_id"] for c in changed]
    session.execute(delete(ROLES).where(ROLES.c.membership_id.in_(changed_ids)))
    session.execute(
        insert(ROLES),
        [
            {
                "membership_id": c["b_id"],
                "role_id": c["org"].by_slug[slug].id,
                "role_slug": slug,
                "position": position,
            }
            for c in changed
            for position, slug in enumerate(c["after"])
        ],
    )
    session.execute(
        _SET_PROVENANCE.values(updated_at=bindparam("b_updated_at")),
        [
            {k: c[k] for k in ("b_id", "b_source", "b_uses_default", "b_provenance")}
            | {"b_updated_at": now}
            for c in changed
        ],
    )
    session.execute(
        insert(AUDIT),
        [
            {
                "membership_id": c["b_id"],
                "organization_id": c["row"]["organization_id"],
                "before_roles": c["before"],
                "after_roles": c["after"],
                "source": c["b_source"],
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
                "id": new_id("event"),
                "event": "organization_membership.updated",
                "data": _event_data(c["row"], c["after"], now),
                "organization_id": c["row"]["organization_id"],
                "created_at": now,
            }
            for c in changed
        ],
    )
    session.info[EVENTS_WRITTEN_KEY] = True


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
