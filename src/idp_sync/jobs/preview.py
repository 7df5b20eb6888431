"""Dry runs (issue 6 point 6): what a change would do to memberships, without doing it.

The change is applied inside a savepoint, exactly as it would be for real (so the
previewed state is the one the job would resolve against); the memberships its jobs
would visit are resolved in memory, batch by batch; then the savepoint is rolled back.
Nothing is written, published or sequenced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp_sync.jobs.models import Job
from idp_sync.jobs.services import affected
from idp_sync.memberships.models import OrganizationMembership
from idp_sync.memberships.recompute import RoleCatalog, idp_inputs, resolve_membership

OM = OrganizationMembership
SAMPLE_SIZE = 20
BATCH = 2000


def dry_run(session: Session, change: Callable[[], list[Job]]) -> dict[str, Any]:
    """Apply ``change`` in a savepoint, measure its jobs' effect, roll everything back."""
    savepoint = session.begin_nested()
    try:
        jobs = change()
        session.flush()
        return measure(session, jobs)
    finally:
        savepoint.rollback()


def measure(session: Session, jobs: list[Job]) -> dict[str, Any]:
    catalog = RoleCatalog(session)
    transitions: Counter[tuple[tuple[str, ...], tuple[str, ...]]] = Counter()
    sample: list[dict[str, Any]] = []
    seen: set[str] = set()
    examined = 0
    for job in jobs:
        cursor: str | None = None
        while True:
            query = affected(job).order_by(OM.id).limit(BATCH)
            if cursor is not None:
                query = query.where(OM.id > cursor)
            ids = [i for i in session.scalars(query) if i not in seen]
            if not ids:
                break
            cursor = ids[-1]
            seen.update(ids)
            examined += len(ids)
            memberships = session.scalars(select(OM).where(OM.id.in_(ids)).order_by(OM.id)).all()
            inputs = idp_inputs(session, ids)
            for m in memberships:
                before = tuple(r.role_slug for r in m.roles)
                org = catalog.for_org(m.organization_id)
                after = resolve_membership(m, org, inputs.get(m.id, (None, None))).roles
                if before != after:
                    transitions[(before, after)] += 1
                    if len(sample) < SAMPLE_SIZE:
                        sample.append(_sample(m, before, after))
    return {
        "object": "dry_run",
        "jobs": [{"type": j.type, "params": dict(j.params)} for j in jobs],
        "examined": examined,
        "changes": sum(transitions.values()),
        "transitions": [
            {"from": list(a), "to": list(b), "count": n} for (a, b), n in transitions.most_common()
        ],
        "sample": sample,
    }


def _sample(
    m: OrganizationMembership, before: tuple[str, ...], after: tuple[str, ...]
) -> dict[str, Any]:
    return {
        "organization_membership_id": m.id,
        "organization_id": m.organization_id,
        "user_id": m.user_id,
        "from": list(before),
        "to": list(after),
    }
