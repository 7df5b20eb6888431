"""Celery entry points of background jobs (``bulk`` queue, prefetch 1)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from celery import shared_task
from sqlalchemy import select
from sqlalchemy.orm import Session

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
        if ctx.runtime.engine.dialect.name == "postgresql":
            progress = _run_overlapped(task, job_id)
        else:
            progress = _run_in_turn(task, job_id)
    except Exception as exc:
        if _is_transient(exc):
            # DbTask retries; the job resumes at its cursor. Its lease is released so the
            # retry need not wait for it (if the database is still away, it expires).
            with contextlib.suppress(Exception), ctx.transaction() as session:
                services.release(session, job_id)
            raise
        with ctx.transaction() as session:
            services.fail(session, job_id, f"{type(exc).__name__}: {exc}")
        log.exception("job failed", extra={"job_id": job_id})
        return "failed"
    log.info("job finished", extra=progress)
    return "done"


def _run_in_turn(task: DbTask, job_id: str) -> dict[str, Any]:
    """Batch after batch, each one transaction (SQLite: one writer at a time)."""
    ctx, settings = task.ctx, task.ctx.runtime.settings
    while True:
        with ctx.transaction() as session:
            more = services.run_batch(
                session,
                job_id,
                batch_size=settings.job_batch_size,
                lease_seconds=settings.job_lease_seconds,
            )
            progress = _progress(services.get_job(session, job_id))
        ctx.progress(**progress)
        if not more:
            return progress


def _run_overlapped(task: DbTask, job_id: str) -> dict[str, Any]:
    """PostgreSQL: batches overlap. The task's thread finds, locks and resolves the next
    batch (client time) while writer threads write the previous ones (server time), each
    batch in its own transaction on its own connection.

    Batches are disjoint id ranges, so their transactions never wait on each other's rows.
    They commit in order: once its rows are written, a batch waits for the batch before it
    to commit, then locks the job row, checks that the cursor is where that batch left it,
    and moves it. A worker killed at any point leaves the cursor at the end of the last
    committed batch, exactly as batches run in turn do.
    """
    ctx, settings = task.ctx, task.ctx.runtime.settings
    with ctx.transaction() as session:
        job = services.get_job(session, job_id)
        spec, cursor = services.JobSpec.of(job), job.cursor
        progress = _progress(job)
    depth = settings.job_writers
    writers = ThreadPoolExecutor(depth, thread_name_prefix="idp-sync-job-writer")
    in_flight: deque[Future[dict[str, Any] | None]] = deque()
    try:
        while True:
            session = ctx.runtime.session()
            handed_off = False
            try:
                session.begin()
                batch = services.plan_batch(session, spec, cursor, settings.job_batch_size)
                # Collect written batches in order; wait for the oldest when all writers
                # are busy, and for all of them before the job's last transaction.
                while in_flight and (
                    batch is None or len(in_flight) >= depth or in_flight[0].done()
                ):
                    done = in_flight.popleft().result()  # a batch's error is raised here
                    if done is None:
                        return progress  # cancelled, or taken over by another delivery
                    progress = done
                    ctx.progress(**progress)
                if batch is None:
                    last = services.lock_running(session, job_id, cursor)
                    if last is not None:
                        services.finish(session, last)
                        progress = _progress(last)
                    session.commit()
                    return progress
                previous = in_flight[-1] if in_flight else None
                # In the task's context: the writer's logs carry its correlation id.
                context = contextvars.copy_context()
                in_flight.append(
                    writers.submit(
                        context.run,
                        _write,
                        session,
                        spec,
                        batch,
                        settings.job_lease_seconds,
                        previous,
                    )
                )
                handed_off = True
                cursor = batch.ids[-1]
            finally:
                if not handed_off:
                    session.close()  # rolls back whatever is still open
    finally:
        for future in in_flight:  # never leave a writer's transaction behind an error
            with contextlib.suppress(BaseException):
                future.result()
        writers.shutdown(wait=True)


def _write(
    session: Session,
    job: services.JobSpec,
    batch: services.Batch,
    lease_seconds: float,
    previous: Future[dict[str, Any] | None] | None,
) -> dict[str, Any] | None:
    """Write and commit a planned batch (writer thread); None if the job moved on."""
    try:
        changed = services.write_batch(session, job, batch)
        # Commit after the batch before this one, never before: the job row's lock alone
        # would not order two batches both waiting for it.
        if previous is not None and _failed(previous):
            session.rollback()
            return None
        locked = services.lock_running(session, job.id, batch.after)
        if locked is None:
            session.rollback()
            return None
        services.advance(locked, batch, changed, lease_seconds=lease_seconds)
        progress = _progress(locked)
        session.commit()
        return progress
    finally:
        session.close()


def _failed(future: Future[dict[str, Any] | None]) -> bool:
    """Wait for a writer; True if its batch was not committed (its error is raised to the
    task by the collecting loop, not here)."""
    try:
        return future.result() is None
    except BaseException:
        return True


def _progress(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "total": job.total, "done": job.done, "changed": job.changed}


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
