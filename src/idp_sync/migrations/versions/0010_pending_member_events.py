"""Member events reserved by an event-loop member PATCH, written by the sequencer

Revision ID: 0010_pending_member_events
Revises: 0009_directory_event_messages

A member PATCH on the event loop no longer writes one ``dsync.group.user_*`` event per
member in its own statement (5,000 rendered and indexed rows for a 5,000-member PATCH):
it reserves their ids and commits one row here with the members it added and removed.
The sequencer writes those events from it, under its lock, before it positions any event,
so they take their place in the stream by their reserved ids (``directory.member_events``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010_pending_member_events"
down_revision = "0009_directory_event_messages"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pending_member_events",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("organization_id", sa.String(length=50), nullable=False),
        sa.Column("directory_id", sa.String(length=50), nullable=False),
        sa.Column("group_id", sa.String(length=50), nullable=False),
        sa.Column("added", JSON, nullable=False),
        sa.Column("removed", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_member_events")),
    )


def downgrade() -> None:
    op.drop_table("pending_member_events")
