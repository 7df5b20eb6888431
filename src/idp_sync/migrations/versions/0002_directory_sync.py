"""directory sync: directories, the SCIM mirror, directory events, group-role mappings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:26:56.435795
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directories",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_directories_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directories")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_directories_token_hash")),
    )
    with op.batch_alter_table("directories", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directories_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "directory_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("directory_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("user_ids", JSON, nullable=False),
        sa.Column("group_id", sa.String(length=50), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_directory_events_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_events")),
    )
    with op.batch_alter_table("directory_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_events_pending", ["directory_id", "processed_at", "id"], unique=False
        )

    op.create_table(
        "directory_group_role_mappings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("directory_id", sa.String(length=40), nullable=False),
        sa.Column("group", sa.String(length=255), nullable=False),
        sa.Column("group_key", sa.String(length=260), nullable=False),
        sa.Column("role_slug", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_directory_group_role_mappings_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_group_role_mappings")),
        sa.UniqueConstraint(
            "directory_id",
            "group_key",
            "role_slug",
            name=op.f("uq_directory_group_role_mappings_directory_id_group_key_role_slug"),
        ),
    )
    with op.batch_alter_table("directory_group_role_mappings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directory_group_role_mappings_directory_id"),
            ["directory_id"],
            unique=False,
        )

    op.create_table(
        "directory_groups",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("directory_id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("display_name_key", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_directory_groups_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_groups")),
        sa.UniqueConstraint(
            "directory_id",
            "display_name_key",
            name=op.f("uq_directory_groups_directory_id_display_name_key"),
        ),
    )
    with op.batch_alter_table("directory_groups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_groups_directory_id_id", ["directory_id", "id"], unique=False
        )

    op.create_table(
        "directory_users",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("directory_id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("user_name_key", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_directory_users_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_directory_users_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_users")),
        sa.UniqueConstraint(
            "directory_id",
            "user_name_key",
            name=op.f("uq_directory_users_directory_id_user_name_key"),
        ),
    )
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_users_directory_id_email", ["directory_id", "email"], unique=False
        )
        batch_op.create_index(
            "ix_directory_users_directory_id_id", ["directory_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_directory_users_user_id"), ["user_id"], unique=False)

    op.create_table(
        "directory_group_members",
        sa.Column("group_id", sa.String(length=50), nullable=False),
        sa.Column("user_id", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["directory_groups.id"],
            name=op.f("fk_directory_group_members_group_id_directory_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["directory_users.id"],
            name=op.f("fk_directory_group_members_user_id_directory_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_directory_group_members")),
    )
    with op.batch_alter_table("directory_group_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directory_group_members_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("directory_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_group_members_user_id"))

    op.drop_table("directory_group_members")
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_users_user_id"))
        batch_op.drop_index("ix_directory_users_directory_id_id")
        batch_op.drop_index("ix_directory_users_directory_id_email")

    op.drop_table("directory_users")
    with op.batch_alter_table("directory_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_directory_groups_directory_id_id")

    op.drop_table("directory_groups")
    with op.batch_alter_table("directory_group_role_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_group_role_mappings_directory_id"))

    op.drop_table("directory_group_role_mappings")
    with op.batch_alter_table("directory_events", schema=None) as batch_op:
        batch_op.drop_index("ix_directory_events_pending")

    op.drop_table("directory_events")
    with op.batch_alter_table("directories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directories_organization_id"))

    op.drop_table("directories")
