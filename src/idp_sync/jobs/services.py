"""Jobs that recompute many memberships after a configuration change (DESIGN §4).

A job row is committed with the change that needs it, and with an outbox message that
runs it on the ``bulk`` queue. The job walks the affected memberships by keyset (id
order) in batches; each batch is one transaction that locks its memberships, writes
those whose roles changed with their audit entries and events, and moves the job's
cursor and progress. A worker killed mid-way loses only its open batch: the redelivered
task resumes at the cursor, so no membership is changed twice and no event duplicated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    cast,
    delete,
    func,
    select,
    union,
)
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.directory.models import DirectoryGroupMember, DirectoryUser
from idp_sync.errors import NotFound, Unprocessable
from idp_sync.ids import new_id
from idp_sync.jobs.models import Job
from idp_sync.memberships import bulk
from idp_sync.memberships.bulk import Change
from idp_sync.memberships.models import MembershipApiRole, MembershipRole, OrganizationMembership
from idp_sync.memberships.recompute import RoleCatalog
from idp_sync.rbac.models import OrganizationAuthorizationSettings
from idp_sync.rbac.services import finish_role_deletion
from idp_sync.tasks import enqueue
from idp_sync.wire import iso

RUN_TASK = "idp_sync.jobs.run"
JOB_TYPES = (
    "default_role_change",
    "directory_mapping_change",
    "priority_order_change",
    "multiple_roles_disabled",
    "reconcile",
    "role_deletion",
    "sso_mapping_change",
)
OM = OrganizationMembership


def serialize(job: Job) -> dict[str, Any]:
    return {
        "object": "job",
        "id": job.id,
        "type": job.type,
        "state": job.state,
        "params": dict(job.params),
        "progress": {"total": job.total, "done": job.done, "changed": job.changed},
        "error": job.error,
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "updated_at": iso(job.updated_at),
    }


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def start_job(session: Session, job_type: str, params: dict[str, Any], *, created_by: str) -> Job:
    """Create the job and its outbox message in the caller's transaction."""
    if job_type not in JOB_TYPES:
        raise Unprocessable(
            f"unknown job type '{job_type}'", errors=[{"code": "invalid", "field": "type"}]
        )
    now = utcnow()
    job = Job(
        id=new_id("job"),
        type=job_type,
        state="pending",
        params=params,
        created_by=created_by,
        created_at=now,
        updated_at=now,
        total=0,
        done=0,
        changed=0,
    )
    session.add(job)
    job.total = count_affected(session, job)
    enqueue(session, RUN_TASK, queue="bulk", job_id=job.id)
    return job


def affected(job: JobSpec | Job) -> Select[tuple[str]]:
    """The ids of the memberships a job may change, found by query (never a full scan in Python)."""
    organization_id = job.params.get("organization_id")
    query = select(OM.id)
    if organization_id:
        query = query.where(OM.organization_id == organization_id)
    if job.type == "default_role_change":
        query = query.where(OM.uses_default.is_(True))
        if not organization_id:  # an organization's own default still wins there
            overridden = select(OrganizationAuthorizationSettings.organization_id).where(
                OrganizationAuthorizationSettings.default_role_id.is_not(None)
            )
            query = query.where(OM.organization_id.not_in(overridden))
    elif job.type == "priority_order_change":
        several_api = (
            select(MembershipApiRole.membership_id)
            .group_by(MembershipApiRole.membership_id)
            .having(func.count() > 1)
        )
        query = query.where(OM.role_source.in_(["directory", "sso"]) | OM.id.in_(several_api))
    elif job.type == "role_deletion":
        role_id = job.params["role_id"]
        holders = select(MembershipRole.membership_id).where(MembershipRole.role_id == role_id)
        api_holders = select(MembershipApiRole.membership_id).where(
            MembershipApiRole.role_id == role_id
        )
        query = query.where(OM.id.in_(holders) | OM.id.in_(api_holders))
    elif job.type == "multiple_roles_disabled":
        several = (
            select(MembershipRole.membership_id)
            .group_by(MembershipRole.membership_id)
            .having(func.count() > 1)
        )
        query = query.where(OM.id.in_(several))
    elif job.type == "directory_mapping_change":  # issue 4: a directory's mappings changed
        query = query.where(_directory_members(job.params))
    elif job.type == "sso_mapping_change":  # issue 5: a connection's mappings changed
        query = query.where(_sso_members(job.params))
    return query


def _sso_members(params: dict[str, Any]) -> ColumnElement[bool]:
    """Members who signed in through the connection; once it is deleted, the SSO-sourced."""
    from idp_sync.sso.models import SsoProfile

    if not params.get("connection_id"):
        return OM.role_source == "sso"
    signed_in = select(SsoProfile.user_id).where(
        SsoProfile.connection_id == params["connection_id"], SsoProfile.user_id.is_not(None)
    )
    return OM.user_id.in_(signed_in)


def _directory_members(params: dict[str, Any]) -> ColumnElement[bool]:
    """Memberships linked to the directory's users (or to one group's members, after a
    rename or deletion); once the directory is deleted, the managed ones."""
    if not params.get("directory_id"):
        return OM.directory_managed.is_(True)
    linked = select(DirectoryUser.user_id).where(
        DirectoryUser.directory_id == params["directory_id"], DirectoryUser.user_id.is_not(None)
    )
    if params.get("group_id"):
        members = select(DirectoryGroupMember.user_id).where(
            DirectoryGroupMember.group_id == params["group_id"]
        )
        linked = linked.where(DirectoryUser.id.in_(members))
    return OM.user_id.in_(linked)


def next_ids(session: Session, job: JobSpec | Job, cursor: str | None, limit: int) -> list[str]:
    """The next batch of affected membership ids after ``cursor``, in id order."""
    if job.type == "role_deletion":
        # Walk the two role tables by their (role_id, membership_id) index: a holder query
        # by membership id would re-hash every holder on each batch.
        holders = _role_holders(job.params["role_id"], cursor, limit).subquery()
        query: Select[tuple[str]] = select(holders.c.mid).order_by(holders.c.mid).limit(limit)
    else:
        query = affected(job).order_by(OM.id).limit(limit)
        if cursor is not None:
            query = query.where(OM.id > cursor)
    # Core execution: thousands of plain strings need none of the ORM's result machinery.
    return list(session.connection().execute(query).scalars().all())


def count_affected(session: Session, job: Job) -> int:
    if job.type == "role_deletion":
        holders = _role_holders(job.params["role_id"], None, None).subquery()
        return session.scalar(select(func.count()).select_from(holders)) or 0
    return session.scalar(select(func.count()).select_from(affected(job).subquery())) or 0


def _role_holders(
    role_id: str, cursor: str | None, limit: int | None
) -> CompoundSelect[tuple[str]]:
    parts = []
    for table in (MembershipRole, MembershipApiRole):
        part = select(table.membership_id.label("mid")).where(table.role_id == role_id)
        if cursor is not None:
            part = part.where(table.membership_id > cursor)
        if limit is not None:
            part = part.order_by(table.membership_id).limit(limit)
        sub = part.subquery()
        parts.append(select(sub.c.mid))
    return union(*parts)  # UNION: a membership holding it both ways counts once


def claim(session: Session, job_id: str, lease_seconds: float) -> Job | None:
    """Take the job's lease if nobody holds a live one; None if finished or held elsewhere."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state not in ("pending", "running"):
        return None
    now = utcnow()
    if job.state == "running" and job.lease_expires_at and job.lease_expires_at > now:
        return None
    job.state = "running"
    job.started_at = job.started_at or now
    job.lease_expires_at = now + dt.timedelta(seconds=lease_seconds)
    job.updated_at = now
    return job


def release(session: Session, job_id: str) -> None:
    """Give up the lease of a running job (its task failed on a transient error and will be
    retried): the retry claims it at once instead of waiting for the lease to expire."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is not None and job.state == "running":
        job.lease_expires_at = job.updated_at = utcnow()


def run_batch(session: Session, job_id: str, *, batch_size: int, lease_seconds: float) -> bool:
    """Process the next batch of the job in ``session``'s transaction. False when finished."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.state != "running":
        return False
    spec = JobSpec.of(job)
    batch = plan_batch(session, spec, job.cursor, batch_size)
    if batch is None:
        finish(session, job)
        return False
    advance(job, batch, write_batch(session, spec, batch), lease_seconds=lease_seconds)
    return True


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """What a batch needs of its job, readable outside any session."""

    id: str
    type: str
    params: dict[str, Any]

    @classmethod
    def of(cls, job: Job) -> JobSpec:
        return cls(job.id, job.type, dict(job.params))


@dataclasses.dataclass(frozen=True)
class Batch:
    """A batch read, locked and resolved, not yet written: the cursor it starts after, its
    ids and their planned changes."""

    after: str | None
    ids: list[str]
    changes: list[Change]


def plan_batch(session: Session, job: JobSpec, cursor: str | None, batch_size: int) -> Batch | None:
    """Find, lock and resolve the batch after ``cursor``; None when there is none left."""
    ids = next_ids(session, job, cursor, batch_size)
    if not ids:
        return None
    return Batch(cursor, ids, bulk.plan(session, ids, RoleCatalog(session)))


def write_batch(session: Session, job: JobSpec, batch: Batch) -> int:
    """Write the planned batch in the transaction that planned it; how many changed."""
    return bulk.write(session, batch.changes, reason=f"{job.type}:{job.id}")


def advance(job: Job, batch: Batch, changed: int, *, lease_seconds: float) -> None:
    """Move the job (locked by the caller, in the batch's transaction) past the batch."""
    now = utcnow()
    job.cursor = batch.ids[-1]
    job.done += len(batch.ids)
    job.total = max(job.total, job.done)
    job.changed += changed
    job.updated_at = now
    job.lease_expires_at = now + dt.timedelta(seconds=lease_seconds)


def lock_running(session: Session, job_id: str, cursor: str | None) -> Job | None:
    """The job, locked, if it is still running from ``cursor``; else None (cancelled,
    failed, or its lease lost to another delivery that moved the cursor on)."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.state != "running" or job.cursor != cursor:
        return None
    return job


def finish(session: Session, job: Job) -> None:
    """Every batch is written: the job's last work, and it has succeeded."""
    now = utcnow()
    _finish(session, job)
    job.state, job.finished_at, job.updated_at = "succeeded", now, now
    job.lease_expires_at = None
    job.done = max(job.done, job.total)


def _finish(session: Session, job: Job) -> None:
    """What a job does once every membership is right, in its last transaction."""
    if job.type == "role_deletion":
        _drop_mappings_to(session, job.params["role_slug"], job.params.get("organization_id"))
        _reresolve_sso_profiles(session, job.params["role_slug"], job.params.get("organization_id"))
        finish_role_deletion(session, job.params["role_id"])


def _reresolve_sso_profiles(session: Session, slug: str, organization_id: str | None) -> None:
    """SSO profiles keep the roles resolved at their last sign-in (``/sso/profile`` answers
    them): those naming the deleted role are resolved again, while the role is still marked
    as being deleted (never resolved), so they get what their membership would: usually
    the default (issue 6 point 2)."""
    from idp_sync.sso.models import SsoProfile
    from idp_sync.sso.signin import resolve_profiles

    # Role slugs hold no quotes: '"slug"' in the JSON text is exactly an element equal to it.
    holds = cast(SsoProfile.roles, String).contains(f'"{slug}"', autoescape=True)
    query = select(SsoProfile.id).where(holds).order_by(SsoProfile.id)
    if organization_id is not None:
        query = query.where(SsoProfile.organization_id == organization_id)
    ids = list(session.scalars(query))
    catalog = RoleCatalog(session)
    now = utcnow()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        profiles = list(session.scalars(select(SsoProfile).where(SsoProfile.id.in_(chunk))))
        for profile, roles in zip(
            profiles, resolve_profiles(session, profiles, catalog), strict=True
        ):
            if roles != profile.roles:
                profile.roles, profile.updated_at = roles, now


def _drop_mappings_to(session: Session, slug: str, organization_id: str | None) -> None:
    """A deleted role's directory and SSO group mappings go with it (issue 6 point 2).

    Mappings name roles by slug: an organization role's only within that organization."""
    from idp_sync.directory.models import Directory, GroupRoleMapping
    from idp_sync.sso.models import Connection, SsoGroupRoleMapping

    for mapping, owner, owner_id in (
        (GroupRoleMapping, Directory, GroupRoleMapping.directory_id),
        (SsoGroupRoleMapping, Connection, SsoGroupRoleMapping.connection_id),
    ):
        condition = mapping.role_slug == slug
        if organization_id is not None:
            owned = select(owner.id).where(owner.organization_id == organization_id)
            condition = condition & owner_id.in_(owned)
        session.execute(delete(mapping).where(condition))


def fail(session: Session, job_id: str, error: str) -> None:
    job = session.get(Job, job_id, with_for_update=True)
    if job is not None and job.state in ("pending", "running"):
        now = utcnow()
        job.state, job.error, job.finished_at, job.updated_at = "failed", error[:2000], now, now
        job.lease_expires_at = None


def list_query(*, job_type: str | None, state: str | None) -> Select[tuple[Job]]:
    query = select(Job)
    if job_type:
        query = query.where(Job.type.in_(job_type.split(",")))
    if state:
        query = query.where(Job.state.in_(state.split(",")))
    return query
