"""A configuration version, changed by triggers on every write to what sign-ins read

Revision ID: 0007_config_version
Revises: 0006_sso_groups_overage

The ACS caches, per process, the role catalog and each SSO connection's settings, and
checks this one row at every sign-in (``idp_sync.config_cache``). Triggers, not the
services, change it: a write through any path (the API, a job's Core statement, a
cascade, psql) makes every cache stale. The token is random rather than a counter: a
rolled-back change or a database made again from scratch never hands out a token that
already labels other data.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The statements below are built from this module's constants only (ruff S608).

revision = "0007_config_version"
down_revision = "0006_sso_groups_overage"
branch_labels = None
depends_on = None

# Keep in step with idp_sync.config_cache.WATCHED_TABLES (a test compares them).
WATCHED_TABLES = (
    "environment_settings",
    "roles",
    "organization_authorization_settings",
    "sso_connections",
    "sso_idp_signing_certs",
    "sso_group_role_mappings",
    "sso_redirect_uris",
)
SQLITE_BUMP = "BEGIN UPDATE config_version SET token = random() WHERE id = 1; END"
PG_RANDOM = "floor(random() * 9.0e18)::bigint - 4500000000000000000"


def upgrade() -> None:
    op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"INSERT INTO config_version (id, token) VALUES (1, {PG_RANDOM})")  # noqa: S608
        op.execute(
            f"""
            CREATE FUNCTION idp_sync_config_changed() RETURNS trigger AS $$
            BEGIN
                UPDATE config_version
                SET token = {PG_RANDOM}
                WHERE id = 1;
                RETURN NULL;
            END;
            $$ LANGUAGE plpgsql
            """  # noqa: S608
        )
        for table in WATCHED_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_config_changed "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION idp_sync_config_changed()"
            )
    else:
        op.execute("INSERT INTO config_version (id, token) VALUES (1, random())")
        for table in WATCHED_TABLES:
            for action in ("INSERT", "UPDATE", "DELETE"):
                name = f"{table}_config_changed_{action.lower()}"
                op.execute(f"CREATE TRIGGER {name} AFTER {action} ON {table} {SQLITE_BUMP}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED_TABLES:
            op.execute(f"DROP TRIGGER {table}_config_changed ON {table}")
        op.execute("DROP FUNCTION idp_sync_config_changed()")
    else:
        for table in WATCHED_TABLES:
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_config_changed_{action}")
    op.execute("DROP TABLE config_version")
