"""Migrations are the only way the schema is made: same result on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from conftest import PG_ADMIN_URL, unavailable
from idp_sync.db import alembic_config, make_engine, upgrade


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    (head,) = script.get_heads()
    return head


@dataclass
class Snapshot:
    revision: str | None
    columns: dict[str, set[str]]  # table -> column names (alembic_version left out)
    settings: list[tuple[object, ...]]  # environment_settings rows, values normalised
    roles: list[tuple[str, str]]  # (scope, slug) of the seeded roles


def snapshot(url: str) -> Snapshot:
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
            inspector = sa.inspect(conn)
            columns = {
                table: {c["name"] for c in inspector.get_columns(table)}
                for table in inspector.get_table_names()
                if table != "alembic_version"
            }
            settings, roles = [], []
            if "environment_settings" in columns:
                query = sa.text(
                    "SELECT id, default_role_slug, multiple_roles_enabled, priority_order "
                    "FROM environment_settings"
                )
                settings = [_settings_row(*row) for row in conn.execute(query)]
            if "roles" in columns:
                roles = [(r.scope, r.slug) for r in conn.execute(sa.text("SELECT * FROM roles"))]
        return Snapshot(revision, columns, settings, roles)
    finally:
        engine.dispose()


def _settings_row(id_: int, slug: str, multiple: object, order: object) -> tuple[object, ...]:
    # SQLite gives JSON back as text and booleans as integers.
    return (id_, slug, bool(multiple), json.loads(order) if isinstance(order, str) else order)


SEEDED_SETTINGS = [(1, "member", False, ["member"])]
SEEDED_ROLES = [("environment", "member")]


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    name = f"idp_sync_migr_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        unavailable("PostgreSQL", exc)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_sqlite_and_postgres_end_at_the_same_schema(tmp_path: Path, fresh_pg_url: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    upgrade(sqlite_url)
    upgrade(fresh_pg_url)
    lite, pg = snapshot(sqlite_url), snapshot(fresh_pg_url)

    assert lite.revision == pg.revision == head_revision()
    assert set(lite.columns) == set(pg.columns)
    assert lite.columns == pg.columns
    assert {
        "environment_settings",
        "roles",
        "organization_memberships",
        "jobs",
        "outbox_messages",
        "events",
    } <= set(pg.columns)
    assert lite.settings == pg.settings == SEEDED_SETTINGS
    assert lite.roles == pg.roles == SEEDED_ROLES


def test_sqlite_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.sqlite'}"
    upgrade(url)
    first = snapshot(url)
    command.downgrade(alembic_config(url), "base")
    base = snapshot(url)
    assert (base.revision, base.columns) == (None, {})
    upgrade(url)
    again = snapshot(url)
    assert again.revision == head_revision()
    assert again.columns == first.columns
    assert (again.settings, again.roles) == (SEEDED_SETTINGS, SEEDED_ROLES)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_match_the_models(backend: str, tmp_path, pg_url: str) -> None:
    """Alembic's autogenerate finds nothing to do: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from idp_sync.db import make_engine, upgrade
    from idp_sync.models import Base

    url = f"sqlite:///{tmp_path / 'models.sqlite'}" if backend == "sqlite" else pg_url
    if backend == "sqlite":
        upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
