"""SSO profiles remember when their groups were last received (Entra groups overage)

Revision ID: 0006_sso_groups_overage
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_sso_groups_overage"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sso_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("groups_received_at", sa.DateTime(timezone=True)))
    # Known groups came with the last sign-in; after an overage sign-in the time is lost.
    op.execute("UPDATE sso_profiles SET groups_received_at = last_sign_in_at WHERE groups_known")


def downgrade() -> None:
    with op.batch_alter_table("sso_profiles", schema=None) as batch_op:
        batch_op.drop_column("groups_received_at")
