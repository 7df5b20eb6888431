"""The embedded default: a real Celery worker and beat inside the current process.

Used by ``idp-sync dev`` and ``idp-sync demo``: the same task code and the same broker
protocol as production (SQLite through Celery's SQLAlchemy transport, or Redis if
``BROKER_URL`` says so), without eager mode, which would run tasks inside the request's
transaction and hide the bugs that matter (DESIGN §4).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from celery import Celery
from celery.beat import EmbeddedService
from celery.contrib.testing.worker import start_worker

from idp_sync.tasks import QUEUES

log = logging.getLogger(__name__)


@contextlib.contextmanager
def worker_and_beat(app: Celery, *, beat: bool = True, concurrency: int = 2) -> Iterator[None]:
    """Run a worker (thread pool) on every queue, and optionally beat, until the block ends."""
    settings = app.idp_runtime.settings
    clock = None
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=list(QUEUES),
        shutdown_timeout=30,
    ):
        if beat:
            schedule = str((settings.data_dir / "beat-schedule").resolve())
            clock = EmbeddedService(app, thread=True, schedule_filename=schedule)
            clock.start()
        log.info("embedded worker running", extra={"queues": ",".join(QUEUES)})
        try:
            yield
        finally:
            if clock is not None:
                clock.stop()
