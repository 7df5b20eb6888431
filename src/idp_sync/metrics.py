"""Prometheus metrics (issue 7 point 5).

Counters and histograms live in the process that does the work: the API serves its own
at ``GET /metrics``; a worker serves its task metrics on ``IDP_SYNC_WORKER_METRICS_PORT``
(run it with the thread pool, the default of ``idp-sync worker``, so one process holds
them). Gauges about the pipeline's state (outbox backlog and age, jobs by type and
state) are read from the database at scrape time by ``DatabaseCollector``, so any API
instance reports the truth, whatever worker did the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from idp_sync.db import utcnow

if TYPE_CHECKING:
    from idp_sync.runtime import Runtime

TASK_DURATION = Histogram(
    "idp_sync_task_duration_seconds",
    "Duration of Celery task runs",
    ["task"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
)
TASK_RUNS = Counter("idp_sync_task_runs_total", "Celery task runs by outcome", ["task", "outcome"])
PUBLISH_FAILURES = Counter(
    "idp_sync_publish_failures_total", "Outbox messages whose publish failed at commit", ["task"]
)
HTTP_REQUESTS = Counter(
    "idp_sync_http_requests_total", "Management API requests", ["method", "route", "status"]
)
SCIM_REQUESTS = Counter(
    "idp_sync_scim_requests_total", "SCIM requests", ["directory_type", "method", "status"]
)
SAML_SIGNINS = Counter("idp_sync_saml_signins_total", "SAML sign-ins", ["outcome", "reason"])
# Which way an accepted sign-in ran: "event_loop" (sso/acs_async.py), or "thread".
SAML_SIGNIN_PATHS = Counter(
    "idp_sync_saml_signin_paths_total", "Accepted SAML sign-ins by how they ran", ["path"]
)
# Which way a hot request ran: "event_loop" (its common case, ``event_loop_first`` in
# ``api.routing`` and ``directory.scim.routing``) or "unit_of_work".
API_PATHS = Counter(
    "idp_sync_api_paths_total",
    "Hot management API and SCIM requests by how they ran",
    ["route", "path"],
)
# Users written by one statement of the event loop's POST /Users (``users_async._Writer``).
SCIM_CREATE_BATCH = Histogram(
    "idp_sync_scim_create_batch_size",
    "SCIM users created per statement on the event loop",
    buckets=(1, 2, 4, 8, 16, 32, 64, 100),
)
WEBHOOK_DELIVERIES = Counter(
    "idp_sync_webhook_delivery_attempts_total", "Webhook delivery attempts", ["outcome"]
)


class DatabaseCollector(Collector):
    """Pipeline state read from the database when Prometheus scrapes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from idp_sync.events.models import Event, OutboxMessage
        from idp_sync.jobs.models import Job

        backlog = GaugeMetricFamily(
            "idp_sync_outbox_pending", "Outbox messages not completed", labels=["task"]
        )
        oldest = GaugeMetricFamily(
            "idp_sync_outbox_oldest_pending_age_seconds", "Age of the oldest pending message"
        )
        unsequenced = GaugeMetricFamily(
            "idp_sync_events_unsequenced", "Committed events waiting for a stream position"
        )
        jobs = GaugeMetricFamily(
            "idp_sync_jobs", "Jobs by type and state", labels=["type", "state"]
        )
        with self.runtime.session() as session:
            pending = select(
                OutboxMessage.task_name, func.count(), func.min(OutboxMessage.created_at)
            )
            first = None
            for task, count, created in session.execute(
                pending.where(OutboxMessage.completed_at.is_(None)).group_by(
                    OutboxMessage.task_name
                )
            ):
                backlog.add_metric([task], count)
                first = created if first is None or (created and created < first) else first
            oldest.add_metric([], (utcnow() - first).total_seconds() if first else 0.0)
            waiting = session.scalar(select(func.count()).where(Event.seq.is_(None)))
            unsequenced.add_metric([], waiting or 0)
            for job_type, state, count in session.execute(
                select(Job.type, Job.state, func.count()).group_by(Job.type, Job.state)
            ):
                jobs.add_metric([job_type, state], count)
        yield from (backlog, oldest, unsequenced, jobs)
