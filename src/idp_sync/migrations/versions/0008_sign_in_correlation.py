"""Sign-ins carry the ACS request's correlation id to the worker

Revision ID: 0008_sign_in_correlation
Revises: 0007_config_version

The login event row is now the sign-in task's only message (no outbox row): the worker
takes pending rows, so the correlation id travels on the row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_sign_in_correlation"
down_revision = "0007_config_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sso_login_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("correlation_id", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("sso_login_events", schema=None) as batch_op:
        batch_op.drop_column("correlation_id")
