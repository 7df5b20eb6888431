"""Role holders walked in membership order: (role_id, membership_id) indexes

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("organization_membership_roles", "organization_membership_api_roles")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_role_id")
            batch_op.create_index(f"ix_{table}_role_id_membership_id", ["role_id", "membership_id"])


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_role_id_membership_id")
            batch_op.create_index(f"ix_{table}_role_id", ["role_id"])
