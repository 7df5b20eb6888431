"""Events (the record of every change) and the outbox (the record of work to do)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp_sync.db import Base, JSONType, UTCDateTime, utcnow


class Event(Base):
    """An event as ``GET /events`` and webhooks show it; written with the change it describes.

    ``seq`` is its position in the stream, given after commit by the single sequencer
    (``events.sequencer``): positions are gapless and only ever given to committed events,
    so a reader paging by ``seq`` never skips an event that commits late.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_event_seq", "event", "seq"),
        Index("ix_events_organization_id_seq", "organization_id", "seq"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    event: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    organization_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class OutboxMessage(Base):
    """A task to run, committed with the state change that calls for it (DESIGN §4).

    Published after commit; a task marks its message completed in its own transaction;
    beat's sweeper republishes messages still not completed after a threshold.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_pending", "completed_at", "available_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(200))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    queue: Mapped[str] = mapped_column(String(50))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Not republished by the sweeper before this time (set at each publish).
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
