"""Webhook endpoints, one delivery per (event, endpoint), and the attempts of each delivery."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp_sync.db import Base, JSONType, UTCDateTime, utcnow

ENABLED = "enabled"
DISABLED = "disabled"

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"  # gave up after the retry period; can be retried on demand


class WebhookEndpoint(Base):
    """A receiver registered through ``webhooks.create_webhook_endpoint``.

    ``secret`` signs every delivery, so it is kept as-is (the row is the only copy); it is
    returned once, in the answer to the creation, and never logged.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_url: Mapped[str] = mapped_column(String(2048), unique=True)
    secret: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20), default=ENABLED)
    events: Mapped[list[str]] = mapped_column(JSONType)
    # Why the endpoint was disabled by us ("failing": no success for a whole retry period).
    disabled_reason: Mapped[str | None] = mapped_column(String(50))
    # First failed attempt since the last success (None while the endpoint is healthy).
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:  # never the secret
        return f"WebhookEndpoint(id={self.id!r}, status={self.status!r})"


class WebhookDelivery(Base):
    """One event to one endpoint: created by the fan-out in the sequencer's transaction.

    ``ordering_key`` (the object the event is about) and ``event_seq`` keep deliveries of one
    object in stream order: a delivery waits while an earlier one of its key is pending.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_webhook_deliveries_ordering", "endpoint_id", "ordering_key", "event_seq"),
        Index("ix_webhook_deliveries_state_next_attempt", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(40), ForeignKey("events.id", ondelete="CASCADE"))
    event_name: Mapped[str] = mapped_column(String(100))
    event_seq: Mapped[int] = mapped_column(BigInteger)
    ordering_key: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Retries stop after this time (creation, or a retry on demand, + the retry period).
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # An attempt in flight holds the delivery until then (a lost worker's lease runs out).
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDeliveryAttempt(Base):
    """One POST of a delivery and what came of it."""

    __tablename__ = "webhook_delivery_attempts"

    delivery_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))  # "delivered" | "failed"
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
