"""Directory events can be their own message: correlation id, and an index of the pending

Revision ID: 0009_directory_event_messages
Revises: 0008_sign_in_correlation

A member PATCH on the event loop writes no outbox row: its directory events are the work,
taken oldest first by ``idp_sync.directory.sync_pending`` (woken after commit, and run by
beat), as sign-ins are. The correlation id travels on the row, and the pending ones are
found through a partial index rather than a scan of every event ever processed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_directory_event_messages"
down_revision = "0008_sign_in_correlation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("directory_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("correlation_id", sa.String(64)))
    op.create_index(
        "ix_directory_events_unprocessed",
        "directory_events",
        ["id"],
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_directory_events_unprocessed", table_name="directory_events")
    with op.batch_alter_table("directory_events", schema=None) as batch_op:
        batch_op.drop_column("correlation_id")
