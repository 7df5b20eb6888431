"""Issue 7 points 5-7: /metrics, health, and JSON logs with a correlation id, no secrets."""

from __future__ import annotations

import json
import logging

import httpx

from conftest import API_KEY, unique, wait_for
from idp_sync.context import correlation_id
from idp_sync.logs import JsonFormatter

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def test_metrics_expose_requests_tasks_jobs_and_outbox(live, worker) -> None:
    role = unique("m")
    httpx.post(f"{live.url}/authorization/roles", json={"slug": role, "name": "M"}, headers=HEADERS)
    job = httpx.put(
        f"{live.url}/organizations/{_org(live)}/authorization_settings",
        json={"default_role_slug": role},
        headers=HEADERS,
    ).json()["job"]
    wait_for(
        lambda: (
            httpx.get(f"{live.url}/jobs/{job['id']}", headers=HEADERS).json()["state"]
            == "succeeded"
        )
    )
    text = httpx.get(f"{live.url}/metrics").text
    assert (
        'idp_sync_http_requests_total{method="POST",route="/authorization/roles",status="201"}'
        in text
    )
    assert 'idp_sync_jobs{state="succeeded",type="default_role_change"}' in text
    assert 'idp_sync_task_runs_total{outcome="success",task="idp_sync.jobs.run"}' in text
    assert "idp_sync_outbox_oldest_pending_age_seconds" in text
    assert "idp_sync_task_duration_seconds_bucket" in text


def _org(live) -> str:
    answer = httpx.post(f"{live.url}/organizations", json={"name": unique("Org")}, headers=HEADERS)
    return answer.json()["id"]


def test_health_and_readiness(live) -> None:
    assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live.url}/readyz").json()
    assert ready["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}


def test_json_log_lines_carry_the_correlation_id_and_redact_secret_fields() -> None:
    record = logging.LogRecord("idp_sync.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    record.bearer_token = "scim-token-value"
    record.directory_id = "directory_1"
    token = correlation_id.set("cid-123")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        correlation_id.reset(token)
    assert line["message"] == "hello x"
    assert line["correlation_id"] == "cid-123"
    assert line["directory_id"] == "directory_1"
    assert line["bearer_token"] == "[redacted]"


def test_request_id_reaches_the_task_and_no_key_reaches_the_logs(live, worker, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    role = unique("c")
    httpx.post(f"{live.url}/authorization/roles", json={"slug": role, "name": "C"}, headers=HEADERS)
    answer = httpx.put(
        f"{live.url}/organizations/{_org(live)}/authorization_settings",
        json={"default_role_slug": role},
        headers={**HEADERS, "X-Request-Id": "req-corr-42"},
    )
    assert answer.headers["x-request-id"] == "req-corr-42"
    job_id = answer.json()["job"]["id"]
    wait_for(
        lambda: (
            httpx.get(f"{live.url}/jobs/{job_id}", headers=HEADERS).json()["state"] == "succeeded"
        )
    )
    task_lines = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert task_lines, "the job logged nothing"
    formatted = [json.loads(JsonFormatter().format(r)) for r in task_lines]
    assert {line["correlation_id"] for line in formatted} == {"req-corr-42"}
    everything = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert API_KEY not in everything


def test_scim_requests_are_counted_by_directory_type_and_status(live, worker, caplog) -> None:
    """Counted by directory type and status; the bearer token reaches neither the metrics
    nor any log line, of the request or of the sync task it starts."""
    caplog.set_level(logging.DEBUG)
    org = _org(live)
    directory = httpx.post(
        f"{live.url}/directories",
        json={"organization_id": org, "name": unique("dir"), "type": "okta scim v2.0"},
        headers=HEADERS,
    ).json()
    scim = directory["scim"]
    answer = httpx.post(
        f"{scim['base_url'].rstrip('/')}/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"{unique('m')}@example.com",
        },
        headers={"Authorization": f"Bearer {scim['bearer_token']}"},
    )
    assert answer.status_code == 201, answer.text
    text = httpx.get(f"{live.url}/metrics").text
    assert (
        'idp_sync_scim_requests_total{directory_type="okta scim v2.0",method="POST",status="201"}'
        in text
    )
    assert scim["bearer_token"] not in text
    wait_for(lambda: any(r.getMessage() == "directory event synced" for r in caplog.records))
    everything = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert scim["bearer_token"] not in everything


def test_events_past_retention_are_purged(live, worker, engine) -> None:
    """Issue 7 point 1: retention is a setting (IDP_SYNC_EVENT_RETENTION_DAYS); beat's purge
    deletes events older than it and keeps the rest."""
    import sqlalchemy as sa

    old, recent = _org(live), _org(live)

    def sequenced() -> bool:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT count(*) FROM events WHERE organization_id IN (:a, :b) "
                    "AND seq IS NOT NULL"
                ),
                {"a": old, "b": recent},
            ).scalar_one()
        return int(rows) == 2

    wait_for(sequenced)
    days = live.runtime.settings.event_retention_days
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE events SET created_at = now() - make_interval(days => :d) "
                    "WHERE organization_id = :o"),
            {"d": days + 1, "o": old},
        )  # fmt: skip
    result = live.runtime.celery.send_task("idp_sync.maintenance.purge", queue="maintenance")

    def left() -> dict[str, int]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT organization_id, count(*) FROM events "
                    "WHERE organization_id IN (:a, :b) GROUP BY organization_id"
                ),
                {"a": old, "b": recent},
            ).all()
        return {org: int(n) for org, n in rows}

    wait_for(lambda: left() == {recent: 1}, timeout=30)
    assert result.id
