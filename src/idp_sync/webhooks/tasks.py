"""Celery entry points of webhook deliveries (``webhooks`` queue), and the fan-out hook.

Importing this module (the worker does, through ``TASK_MODULES``) registers the fan-out
as a sequencer hook: deliveries are created in the transaction that positions events.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time

import httpx
from celery import Celery, shared_task

from idp_sync.config import Settings
from idp_sync.db import utcnow
from idp_sync.events.sequencer import SEQUENCED_HOOKS
from idp_sync.metrics import WEBHOOK_DELIVERIES
from idp_sync.tasks import DbTask, runtime_of
from idp_sync.webhooks import deliveries, destinations, services, signing

log = logging.getLogger(__name__)

USER_AGENT = "idp-sync-webhooks/0.1"

if services.fan_out not in SEQUENCED_HOOKS:
    SEQUENCED_HOOKS.append(services.fan_out)


@shared_task(bind=True, base=DbTask, name=deliveries.DELIVER_TASK, queue=deliveries.QUEUE)
def deliver(task: DbTask, delivery_id: str) -> str:
    """One attempt of a delivery: claim it, POST the signed event, record what happened.

    Safe to receive more than once: a delivery that is not pending, held by a disabled
    endpoint, in flight elsewhere or waiting for an earlier event of its object is left alone.
    """
    ctx = task.ctx
    settings = ctx.runtime.settings
    lease = settings.webhook_timeout_seconds + 30
    with ctx.transaction() as session:
        claimed = deliveries.claim(session, delivery_id, lease_seconds=lease)
    publish_later(task.app, claimed.later)
    if claimed.attempt is None:
        return claimed.reason
    outcome = post(claimed.attempt, settings)
    with ctx.transaction() as session:
        later = deliveries.record(session, delivery_id, outcome, settings=settings)
    publish_later(task.app, later)
    result = "delivered" if outcome.ok else "retrying" if later is not None else "failed"
    WEBHOOK_DELIVERIES.labels(result).inc()  # delivered | retrying | failed
    log.info(
        "webhook attempt",
        extra={
            "delivery_id": delivery_id,
            "endpoint_id": claimed.attempt.endpoint_id,
            "event_id": claimed.attempt.event_id,
            "status_code": outcome.status_code,
            "error": outcome.error,
            "outcome": result,
        },
    )
    return result


def post(attempt: deliveries.Attempt, settings: Settings) -> deliveries.Outcome:
    """POST the exact signed bytes; never raises for what the receiver or network does."""
    attempted_at = utcnow()
    started = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        target = destinations.pin(
            attempt.url, allow_private=settings.webhook_allow_private_destinations
        )
        timestamp_ms = int(time.time() * 1000)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            signing.SIGNATURE_HEADER: signing.signature(attempt.secret, attempt.body, timestamp_ms),
            **target.headers,
        }
        with httpx.Client(
            verify=tls_context(),
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            trust_env=False,
        ) as client:
            response = client.post(
                target.url, content=attempt.body, headers=headers, extensions=target.extensions
            )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except destinations.DestinationRefused as exc:
        error = f"destination refused: {exc}"
    except httpx.TimeoutException as exc:
        error = f"timeout ({type(exc).__name__})"
    except httpx.HTTPError as exc:  # connection refused or reset, TLS, protocol errors
        error = f"connection error ({type(exc).__name__})"
    duration_ms = int((time.perf_counter() - started) * 1000)
    return deliveries.Outcome(attempted_at, duration_ms, status_code, error)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context of every attempt, built once per process: loading the CA
    bundle costs ~14 ms of CPU, more than the rest of an attempt (bench/webhooks.py), and
    one context serves the connections of every thread. Each attempt still opens its own
    connection, so that none is reused across endpoints that resolve to one address."""
    return httpx.create_ssl_context(trust_env=False)


def publish_later(app: Celery, later: deliveries.Later | None) -> None:
    """Send a scheduled attempt with its countdown; if the broker is unreachable, the
    outbox row stays pending and beat's sweeper publishes it once due."""
    if later is None or later.countdown is None:
        return
    message = later.message
    timeout = runtime_of(app).settings.publish_timeout_seconds
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            app.send_task(
                message.task_name,
                kwargs={**message.kwargs, "outbox_id": message.id},
                queue=message.queue,
                countdown=later.countdown,
                headers={"correlation_id": message.correlation_id},
                connection=conn,
                retry=False,
            )
    except Exception as exc:
        log.warning(
            "scheduled webhook attempt not published; the sweeper will",
            extra={"outbox_id": message.id, "error": type(exc).__name__},
        )
