"""Celery entry points of background jobs (``bulk`` queue, prefetch 1)."""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy import select

from idp_sync.db import utcnow
from idp_sync.jobs import services
from idp_sync.jobs.models import Job
from idp_sync.tasks import DbTask

log = logging.getLogger(__name__)


@shared_task(bind=True, base=DbTask, name="idp_sync.jobs.run", queue="bulk")
def run_job(task: DbTask, job_id: str) -> str:
    """Run a recompute job batch by batch from its cursor; safe to deliver more than once."""
    ctx = task.ctx
    settings = ctx.runtime.settings
    with ctx.transaction() as session:
        job = services.claim(session, job_id, settings.job_lease_seconds)
        if job is None:
            held = session.get(Job, job_id)
            if held is not None and held.state in ("pending", "running"):
                # Another delivery holds a live lease. Come back when it expires: if that
                # worker died, this delivery resumes the job; if not, the job is finished.
                expires = held.lease_expires_at or utcnow()
                wait = max((expires - utcnow()).total_seconds(), 0.0) + 1.0
                raise task.retry(countdown=wait, max_retries=None)
            return "skipped"
        job_type = job.type
    log.info("job started", extra={"job_id": job_id, "job_type": job_type})
    try:
        while True:
            with ctx.transaction() as session:
                more = services.run_batch(
                    session,
                    job_id,
                    batch_size=settings.job_batch_size,
                    lease_seconds=settings.job_lease_seconds,
                )
                job = services.get_job(session, job_id)
                progress = {
                    "job_id": job_id,
                    "total": job.total,
                    "done": job.done,
                    "changed": job.changed,
                }
            ctx.progress(**progress)
            if not more:
                break
    except Exception as exc:
        if _is_transient(exc):
            raise  # DbTask retries; the job resumes at its cursor
        with ctx.transaction() as session:
            services.fail(session, job_id, f"{type(exc).__name__}: {exc}")
        log.exception("job failed", extra={"job_id": job_id})
        return "failed"
    log.info("job finished", extra=progress)
    return "done"


def _is_transient(exc: Exception) -> bool:
    return isinstance(exc, DbTask.autoretry_for)


@shared_task(bind=True, base=DbTask, name="idp_sync.jobs.schedule_reconcile", acks_late=False)
def schedule_reconcile(task: DbTask) -> str | None:
    """Beat: start an environment-wide reconciliation unless one is already under way."""
    with task.ctx.transaction() as session:
        busy = session.scalar(
            select(Job.id).where(Job.type == "reconcile", Job.state.in_(("pending", "running")))
        )
        if busy is not None:
            return None
        return services.start_job(session, "reconcile", {}, created_by="beat").id
