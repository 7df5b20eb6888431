"""The Celery side of the pipeline (DESIGN §4, STYLE "Tasks").

* ``create_celery_app`` builds the app for a set of settings; nothing connects at import.
* ``DbTask`` is the one base class: it gives the task body ``task.ctx`` (sessions in
  transactions it commits, progress reporting), marks the outbox message completed,
  retries on transient database errors, and logs duration and outcome.
* ``enqueue`` records work as an outbox row in the caller's transaction and publishes it
  from an after-commit hook; ``publish_pending`` is that hook. Beat's sweeper
  (``idp_sync.events.outbox``) republishes what a failed publish or a lost worker left.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task, signals
from celery.exceptions import Retry
from kombu.entity import Exchange, Queue
from sqlalchemy import event, inspect, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from idp_sync.config import Settings, get_settings
from idp_sync.context import correlation_id, current_correlation_id
from idp_sync.db import utcnow
from idp_sync.events.models import OutboxMessage
from idp_sync.ids import new_id
from idp_sync.logs import install_record_factory
from idp_sync.metrics import PUBLISH_FAILURES, TASK_DURATION, TASK_RUNS
from idp_sync.runtime import Runtime

log = logging.getLogger(__name__)

QUEUES = ("sync", "bulk", "webhooks", "maintenance")
TASK_MODULES = [
    "idp_sync.events.outbox",
    "idp_sync.events.sequencer",
    "idp_sync.events.maintenance",
    "idp_sync.jobs.tasks",
    "idp_sync.directory.tasks",
    "idp_sync.webhooks.tasks",
    "idp_sync.sso.tasks",
]
_PENDING_KEY = "idp_sync.pending_publish"
EVENTS_WRITTEN_KEY = "idp_sync.events_written"
CORRELATION_HEADER = "idp_correlation_id"


def create_celery_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Celery:
    """A Celery app bound to ``runtime`` (or a new one for ``settings``)."""
    runtime = runtime or Runtime(settings or get_settings())
    settings = runtime.settings
    install_record_factory()
    settings.ensure_data_dir()
    app = Celery("idp_sync", set_as_current=False)
    broker = settings.effective_broker_url
    app.conf.update(
        broker_url=broker,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(broker, settings),
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue="sync",
        # Each queue its own direct exchange and routing key: with bare Queue(name), Celery
        # binds every queue to the default exchange under the same key, and a message for
        # one queue is copied into all of them.
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        task_default_exchange="sync",
        task_default_routing_key="sync",
        task_create_missing_queues=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_schedule={
            "sweep-outbox": {
                "task": "idp_sync.outbox.sweep",
                "schedule": settings.sweeper_interval_seconds,
                "options": {"queue": "maintenance", "expires": settings.sweeper_interval_seconds},
            },
            # A safety net: commits that write events also ask for sequencing at once.
            "sequence-events": {
                "task": "idp_sync.events.sequence",
                "schedule": settings.sequencer_interval_seconds,
                "options": {"queue": "sync", "expires": settings.sequencer_interval_seconds},
            },
            # Likewise for sign-ins: the ACS asks for them to be folded in at once.
            "sign-ins": {
                "task": "idp_sync.sso.sign_ins",
                "schedule": settings.sequencer_interval_seconds,
                "options": {"queue": "sync", "expires": settings.sequencer_interval_seconds},
            },
            # Likewise for directory events written without an outbox row (the member
            # PATCH on the event loop): the request asks for them to be folded in at once.
            "directory-sync": {
                "task": "idp_sync.directory.sync_pending",
                "schedule": settings.sequencer_interval_seconds,
                "options": {"queue": "sync", "expires": settings.sequencer_interval_seconds},
            },
            "reconcile": {
                "task": "idp_sync.jobs.schedule_reconcile",
                "schedule": settings.reconcile_interval_seconds,
                "options": {"queue": "maintenance", "expires": 600},
            },
            "purge": {
                "task": "idp_sync.maintenance.purge",
                "schedule": 3600.0,
                "options": {"queue": "maintenance", "expires": 3600},
            },
        },
        include=TASK_MODULES,
    )
    app.idp_runtime = runtime
    runtime.celery = app
    app.loader.import_default_modules()
    return app


def _transport_options(broker: str, settings: Settings) -> dict[str, Any]:
    timeout = settings.publish_timeout_seconds
    if broker.startswith(("redis://", "rediss://")):
        options: dict[str, Any] = {
            "visibility_timeout": 3600,
            "socket_connect_timeout": timeout,
            "socket_timeout": max(timeout, 5.0),
        }
        if settings.broker_key_prefix:
            options["global_keyprefix"] = settings.broker_key_prefix
        return options
    return {}


def runtime_of(app: Celery) -> Runtime:
    runtime = getattr(app, "idp_runtime", None)
    if runtime is None:  # an app made elsewhere (e.g. `celery -A workers.celery_app`)
        runtime = Runtime()
        app.idp_runtime = runtime
        runtime.celery = app
    return runtime


# --- enqueue after commit -------------------------------------------------------------


def enqueue(
    session: Session,
    task_name: str,
    *,
    queue: str,
    delay_sweep_seconds: float | None = None,
    **kwargs: Any,
) -> OutboxMessage:
    """Record ``task_name(**kwargs)`` as work to do, in ``session``'s transaction.

    The message is published after the transaction commits; if publishing fails, or the
    worker is lost, the sweeper republishes it once ``available_at`` has passed.
    """
    runtime: Runtime | None = session.info.get("runtime")
    threshold = delay_sweep_seconds
    if threshold is None:
        threshold = runtime.settings.sweeper_threshold_seconds if runtime else 60.0
    message = OutboxMessage(
        id=new_id("outbox"),
        task_name=task_name,
        kwargs=kwargs,
        queue=queue,
        correlation_id=current_correlation_id(),
        available_at=utcnow() + dt.timedelta(seconds=threshold),
        published_count=1,
    )
    session.add(message)
    session.info.setdefault(_PENDING_KEY, []).append(message)
    return message


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    pending: list[OutboxMessage] = session.info.pop(_PENDING_KEY, [])
    wrote_events = session.info.pop(EVENTS_WRITTEN_KEY, False)
    # A message added in a savepoint that was rolled back left the session: not sent.
    committed = [m for m in pending if inspect(m).persistent]
    runtime: Runtime | None = session.info.get("runtime")
    if runtime is None or runtime.celery is None:
        return
    if committed:
        publish_pending(runtime.celery, committed)
    if wrote_events:
        request_sequencing(runtime.celery)


def request_sequencing(app: Celery) -> None:
    """Ask for new events to be positioned soon, off the request path."""
    request_task(app, "idp_sync.events.sequence", queue="sync")


def request_task(app: Celery, task_name: str, *, queue: str) -> None:
    """Ask for ``task_name`` (no arguments) to run soon, without waiting for the broker: a
    background notifier per task coalesces requests into at most one message per
    ``_NOTIFY_PERIOD``. For tasks that take their work from rows committed beforehand
    (events to sequence, sign-ins to fold in) and that beat also runs on a schedule, so a
    request lost with the process costs a delay, not the work."""
    notifiers: dict[str, _Notifier] | None = getattr(app, "_idp_notifiers", None)
    notifier = notifiers.get(task_name) if notifiers is not None else None
    if notifier is None:
        with _notifier_lock:
            notifiers = app.__dict__.setdefault("_idp_notifiers", {})
            notifier = notifiers.get(task_name)
            if notifier is None:
                notifier = notifiers[task_name] = _Notifier(app, task_name, queue)
    notifier.wake()


_NOTIFY_PERIOD = 0.05
_notifier_lock = threading.Lock()


class _Notifier:
    """One daemon thread per app and task that sends the task when woken.

    Losing a request is harmless (beat runs the task every few seconds); what matters is
    that commits never wait on the broker for it.
    """

    def __init__(self, app: Celery, task_name: str, queue: str) -> None:
        self.app, self.task_name, self.queue = app, task_name, queue
        self.wanted = threading.Event()
        name = f"idp-sync-notify-{task_name.rsplit('.', 1)[-1]}"
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def wake(self) -> None:
        self.wanted.set()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            try:
                with self.app.producer_or_acquire() as producer:
                    self.app.send_task(
                        self.task_name, queue=self.queue, producer=producer, retry=False
                    )
            except Exception as exc:
                log.warning(
                    "task request not sent; beat will run it",
                    extra={"task_name": self.task_name, "error": str(exc)},
                )
            time.sleep(_NOTIFY_PERIOD)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: Any) -> None:
    """Work enqueued in a rolled-back transaction is never published."""
    if not previous_transaction.nested:
        session.info.pop(_PENDING_KEY, None)
        session.info.pop(EVENTS_WRITTEN_KEY, None)


def publish_pending(app: Celery, messages: list[OutboxMessage]) -> int:
    """Publish outbox messages on one pooled connection; returns how many were sent.

    An unreachable broker costs one bounded connection attempt, not one per message: the
    rest stays pending in the outbox for the sweeper.
    """
    timeout = runtime_of(app).settings.publish_timeout_seconds
    sent = 0
    try:
        with app.producer_or_acquire() as producer:  # pooled: no new connection per commit
            producer.connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            for message in messages:
                app.send_task(
                    message.task_name,
                    kwargs={**message.kwargs, "outbox_id": message.id},
                    queue=message.queue,
                    headers={CORRELATION_HEADER: message.correlation_id},
                    producer=producer,
                    retry=False,
                )
                sent += 1
    except Exception as exc:  # broker down: the rows stay pending for the sweeper
        for message in messages[sent:]:
            PUBLISH_FAILURES.labels(message.task_name).inc()
        log.warning(
            "publish failed; the sweeper will retry",
            extra={"unsent": len(messages) - sent, "error": f"{type(exc).__name__}: {exc}"},
        )
    return sent


# --- the task base class --------------------------------------------------------------


@dataclass
class TaskContext:
    """What a task body gets: transactions, progress reporting, its own name."""

    task: DbTask
    runtime: Runtime

    @contextlib.contextmanager
    def transaction(self, *, completes: bool = False) -> Iterator[Session]:
        """One unit of work, committed when the block ends (rolled back on error).

        ``completes=True``: this transaction finishes the task's work, so the outbox
        message that delivered the task is marked completed inside it: one transaction
        less per task, and the work and its completion commit together."""
        delivery = _delivery.get()
        with self.runtime.transaction() as session:
            yield session
            if completes and delivery is not None and delivery.outbox_id is not None:
                _complete(session, delivery.outbox_id)
        if completes and delivery is not None:
            delivery.completed = True

    def progress(self, **meta: Any) -> None:
        """Report progress: a ``task-progress`` monitoring event (Flower shows its fields on
        the task) and, when a result backend is configured, the task state ``PROGRESS``."""
        if not self.task.request.id or self.task.request.is_eager:
            return
        with contextlib.suppress(Exception):
            self.task.send_event("task-progress", **meta)
        if self.task.app.conf.result_backend:
            with contextlib.suppress(Exception):
                self.task.update_state(state="PROGRESS", meta=meta)


class DbTask(Task):  # type: ignore[misc]
    """Base of every idp-sync task: owns sessions, transactions, retries, outbox and logs."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (OperationalError, DBAPIError)
    retry_backoff = True
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 5

    @property
    def ctx(self) -> TaskContext:
        """Transactions and progress for the task body (stateless, so thread-safe)."""
        return TaskContext(self, runtime_of(self.app))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outbox_id = kwargs.pop("outbox_id", None)
        delivery = _Delivery(outbox_id)
        delivery_token = _delivery.set(delivery)
        headers = getattr(self.request, "headers", None) or {}
        # Not Celery's own ``correlation_id`` (the task id): ours is the HTTP request's.
        cid = headers.get(CORRELATION_HEADER) or getattr(self.request, CORRELATION_HEADER, None)
        token = correlation_id.set(cid)
        started = time.perf_counter()
        try:
            result = self.run(*args, **kwargs)
            if outbox_id is not None and not delivery.completed:
                complete_outbox_message(runtime_of(self.app), outbox_id)
        except Retry:
            TASK_RUNS.labels(self.name, "retry").inc()
            raise
        except Exception:
            TASK_RUNS.labels(self.name, "failure").inc()
            TASK_DURATION.labels(self.name).observe(time.perf_counter() - started)
            log.exception(
                "task failed",
                extra={"task_name": self.name, "duration_ms": _ms(started), "outbox_id": outbox_id},
            )
            raise
        finally:
            correlation_id.reset(token)
            _delivery.reset(delivery_token)
        TASK_RUNS.labels(self.name, "success").inc()
        TASK_DURATION.labels(self.name).observe(time.perf_counter() - started)
        log.info("task done", extra={"task_name": self.name, "duration_ms": _ms(started)})
        return result


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@dataclass
class _Delivery:
    """The task run in progress on this thread: the outbox message that delivered it."""

    outbox_id: str | None
    completed: bool = False


_delivery: contextvars.ContextVar[_Delivery | None] = contextvars.ContextVar(
    "idp_sync_delivery", default=None
)


def complete_outbox_message(runtime: Runtime, outbox_id: str) -> None:
    with runtime.transaction() as session:
        _complete(session, outbox_id)


def _complete(session: Session, outbox_id: str) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.completed_at.is_(None))
        .values(completed_at=utcnow())
    )


@signals.worker_init.connect
def _worker_metrics(**_: Any) -> None:
    """Serve the worker's task metrics when ``IDP_SYNC_WORKER_METRICS_PORT`` is set."""
    port = get_settings().worker_metrics_port
    if port:
        from prometheus_client import start_http_server

        start_http_server(port)
        log.info("worker metrics served", extra={"port": port})


@signals.worker_process_init.connect
def _fresh_engine_in_child(**_: Any) -> None:
    """A forked pool process must not share the parent's database connections."""
    from celery import current_app

    runtime = getattr(current_app, "idp_runtime", None)
    if runtime is not None:
        runtime.dispose()
