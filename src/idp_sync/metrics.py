"""Prometheus metrics shared by the API and the workers (exposed by later issues' /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
