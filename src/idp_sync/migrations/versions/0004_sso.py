"""sso: SAML connections, IdP signing certificates, SSO group-to-role mappings, outstanding
AuthnRequests, the assertion replay cache, SSO profiles, sign-in events, codes and tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:45:57.035149
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_assertion_replays",
        sa.Column("assertion_id", sa.String(length=255), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("not_on_or_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("assertion_id", name=op.f("pk_sso_assertion_replays")),
    )
    op.create_index(
        op.f("ix_sso_assertion_replays_not_on_or_after"),
        "sso_assertion_replays",
        ["not_on_or_after"],
        unique=False,
    )
    op.create_table(
        "sso_connections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("connection_type", sa.String(length=50), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("idp_entity_id", sa.String(length=1024), nullable=True),
        sa.Column("idp_sso_url", sa.String(length=2048), nullable=True),
        sa.Column("sp_entity_id", sa.String(length=1024), nullable=False),
        sa.Column("acs_url", sa.String(length=2048), nullable=False),
        sa.Column("attribute_maps", JSON, nullable=False),
        sa.Column("allow_idp_initiated", sa.Boolean(), nullable=False),
        sa.Column("allow_sha1", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_sso_connections_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_connections")),
    )
    op.create_index(
        op.f("ix_sso_connections_organization_id"),
        "sso_connections",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "sso_authn_requests",
        sa.Column("id", sa.String(length=60), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_authn_requests_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_authn_requests")),
    )
    op.create_index(
        op.f("ix_sso_authn_requests_connection_id"),
        "sso_authn_requests",
        ["connection_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_sso_authn_requests_expires_at"), "sso_authn_requests", ["expires_at"], unique=False
    )
    op.create_table(
        "sso_group_role_mappings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("group", sa.String(length=255), nullable=False),
        sa.Column("role_slug", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_group_role_mappings_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_group_role_mappings")),
        sa.UniqueConstraint(
            "connection_id",
            "group",
            "role_slug",
            name=op.f("uq_sso_group_role_mappings_connection_id_group_role_slug"),
        ),
    )
    op.create_index(
        op.f("ix_sso_group_role_mappings_connection_id"),
        "sso_group_role_mappings",
        ["connection_id"],
        unique=False,
    )
    op.create_table(
        "sso_idp_signing_certs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_idp_signing_certs_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_idp_signing_certs")),
    )
    op.create_index(
        op.f("ix_sso_idp_signing_certs_connection_id"),
        "sso_idp_signing_certs",
        ["connection_id"],
        unique=False,
    )
    op.create_table(
        "sso_profiles",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("idp_id", sa.String(length=512), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("groups", JSON, nullable=False),
        sa.Column("groups_known", sa.Boolean(), nullable=False),
        sa.Column("roles", JSON, nullable=False),
        sa.Column("raw_attributes", JSON, nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("membership_id", sa.String(length=40), nullable=True),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_profiles_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sso_profiles_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_profiles")),
        sa.UniqueConstraint(
            "connection_id", "idp_id", name=op.f("uq_sso_profiles_connection_id_idp_id")
        ),
    )
    op.create_index(op.f("ix_sso_profiles_email"), "sso_profiles", ["email"], unique=False)
    op.create_index(
        op.f("ix_sso_profiles_membership_id"), "sso_profiles", ["membership_id"], unique=False
    )
    op.create_index(
        op.f("ix_sso_profiles_organization_id"), "sso_profiles", ["organization_id"], unique=False
    )
    op.create_index(op.f("ix_sso_profiles_user_id"), "sso_profiles", ["user_id"], unique=False)
    op.create_table(
        "sso_access_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("profile", JSON, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["sso_profiles.id"],
            name=op.f("fk_sso_access_tokens_profile_id_sso_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sso_access_tokens")),
    )
    op.create_table(
        "sso_authorization_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("profile", JSON, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["sso_profiles.id"],
            name=op.f("fk_sso_authorization_codes_profile_id_sso_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_sso_authorization_codes")),
    )
    op.create_table(
        "sso_login_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["sso_profiles.id"],
            name=op.f("fk_sso_login_events_profile_id_sso_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_login_events")),
    )
    op.create_index(
        "ix_sso_login_events_pending", "sso_login_events", ["processed_at", "id"], unique=False
    )

    op.create_table(
        "sso_redirect_uris",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_redirect_uris")),
        sa.UniqueConstraint("uri", name=op.f("uq_sso_redirect_uris_uri")),
    )


def downgrade() -> None:
    op.drop_table("sso_redirect_uris")
    op.drop_index("ix_sso_login_events_pending", table_name="sso_login_events")
    op.drop_table("sso_login_events")
    op.drop_table("sso_authorization_codes")
    op.drop_table("sso_access_tokens")
    op.drop_index(op.f("ix_sso_profiles_user_id"), table_name="sso_profiles")
    op.drop_index(op.f("ix_sso_profiles_organization_id"), table_name="sso_profiles")
    op.drop_index(op.f("ix_sso_profiles_membership_id"), table_name="sso_profiles")
    op.drop_index(op.f("ix_sso_profiles_email"), table_name="sso_profiles")
    op.drop_table("sso_profiles")
    op.drop_index(
        op.f("ix_sso_idp_signing_certs_connection_id"), table_name="sso_idp_signing_certs"
    )
    op.drop_table("sso_idp_signing_certs")
    op.drop_index(
        op.f("ix_sso_group_role_mappings_connection_id"), table_name="sso_group_role_mappings"
    )
    op.drop_table("sso_group_role_mappings")
    op.drop_index(op.f("ix_sso_authn_requests_expires_at"), table_name="sso_authn_requests")
    op.drop_index(op.f("ix_sso_authn_requests_connection_id"), table_name="sso_authn_requests")
    op.drop_table("sso_authn_requests")
    op.drop_index(op.f("ix_sso_connections_organization_id"), table_name="sso_connections")
    op.drop_table("sso_connections")
    op.drop_index(
        op.f("ix_sso_assertion_replays_not_on_or_after"), table_name="sso_assertion_replays"
    )
    op.drop_table("sso_assertion_replays")
