"""The event stream's single committer of positions (issue 7, DESIGN §6).

Events are written with the change they describe, without a position. The sequencer,
holding one lock (a PostgreSQL advisory lock; SQLite serialises writers anyway), gives
``seq`` = last + 1, + 2, ... to the committed events that have none, in id order, in one
transaction. So:

* positions are only ever given to committed events, and all of one run become visible
  together: the set of positions a reader sees is always gapless, and a poller paging
  with ``after`` never skips an event that committed late;
* within one membership or object, changes are serialised by row locks, so their events'
  ids, and hence their positions, follow the order of the changes;
* events reserved rather than written by their request (a member PATCH on the event
  loop, ``directory.member_events``) are written here first, with their reserved ids, so
  the same holds for them.

Hooks registered in ``SEQUENCED_HOOKS`` (webhook fan-out) run in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp_sync.db import is_postgres
from idp_sync.events.models import Event
from idp_sync.tasks import DbTask

log = logging.getLogger(__name__)

SEQUENCER_LOCK = 0x1D5_5E0  # advisory lock key, arbitrary but fixed
SEQUENCED_HOOKS: list[Callable[[Session, list[Event]], None]] = []
SEQUENCE_TASK = "idp_sync.events.sequence"
SEQUENCE_BATCH = 5000


def assign_sequence(session: Session, limit: int = SEQUENCE_BATCH) -> list[Event]:
    """Give positions to committed, unpositioned events (oldest id first), in the caller's
    transaction, and run the hooks on them. Returns them in position order."""
    if is_postgres(session):
        session.execute(select(func.pg_advisory_xact_lock(SEQUENCER_LOCK)))
    # Events reserved by member PATCHes on the event loop are written first, under the
    # lock: positioned by their ids among the others, as if their request had written
    # them. (Imported here: the directory package builds on this one.)
    from idp_sync.directory.member_events import write_pending

    write_pending(session)
    last = session.scalar(select(func.max(Event.seq))) or 0
    events = list(
        session.scalars(select(Event).where(Event.seq.is_(None)).order_by(Event.id).limit(limit))
    )
    for position, event in enumerate(events, start=last + 1):
        event.seq = position
    if events:
        session.flush()
        for hook in SEQUENCED_HOOKS:
            hook(session, events)
    return events


@shared_task(bind=True, base=DbTask, name=SEQUENCE_TASK, queue="sync", acks_late=False)
def sequence_events(task: DbTask) -> int:
    """Position newly committed events (sent after commits that wrote events, and by beat)."""
    total = 0
    while True:
        with task.ctx.transaction() as session:
            done = len(assign_sequence(session))
        total += done
        if done < SEQUENCE_BATCH:
            return total
