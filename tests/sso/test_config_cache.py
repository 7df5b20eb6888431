"""The ACS's per-process configuration cache (``idp_sync.config_cache``): every write to a
table it reads changes the token through triggers, on both dialects, and the next
sign-in sees the change (a removed certificate, a removed mapping, a deactivated
connection) with no restart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import sqlalchemy as sa

from idp_sync.config_cache import WATCHED_TABLES
from sso.saml_idp import make_key_and_cert
from sso.sso_helpers import Setup, post_acs, start_sign_in
from sso.test_sso_flow import _map, _roles, sign_in

MIGRATION = (
    Path(__file__).resolve().parents[2] / "src/idp_sync/migrations/versions/0007_config_version.py"
)


def test_the_cache_watches_what_the_migration_triggers_on() -> None:
    spec = importlib.util.spec_from_file_location("config_version_migration", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.WATCHED_TABLES == WATCHED_TABLES


def _token(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT token FROM config_version WHERE id = 1")).scalar_one())


def _touch(conn: sa.Connection, table: str) -> int:
    """Write every row of ``table`` with no change (the triggers still fire); how many."""
    from idp_sync.models import Base

    key = next(iter(Base.metadata.tables[table].primary_key.columns)).name
    return conn.execute(sa.text(f"UPDATE {table} SET {key} = {key}")).rowcount


def _triggers(conn: sa.Connection, backend: str) -> set[str]:
    if backend == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    return set(conn.execute(sa.text(query)).scalars())


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_write_to_any_watched_table_changes_the_token(
    backend: str, pg_url: str, tmp_path
) -> None:
    """PostgreSQL's triggers fire per statement (rows or not): every table is written.
    SQLite's fire per row: every trigger is there, and the seeded tables are written."""
    from idp_sync.db import make_engine, upgrade

    url = pg_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'cache.sqlite'}"
    if backend == "sqlite":
        upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            outer = conn.begin()
            triggers = _triggers(conn, backend)
            changed = {}
            for table in WATCHED_TABLES:
                before = _token(conn)
                if _touch(conn, table) or backend == "postgresql":
                    changed[table] = _token(conn) != before
            outer.rollback()
    finally:
        engine.dispose()
    if backend == "postgresql":
        expected = {f"{t}_config_changed" for t in WATCHED_TABLES}
        assert changed == {table: True for table in WATCHED_TABLES}
    else:
        expected = {
            f"{t}_config_changed_{a}"
            for t in WATCHED_TABLES
            for a in ("insert", "update", "delete")
        }
        assert {"environment_settings", "roles"} <= set(changed)  # seeded by the migrations
        assert set(changed.values()) == {True}
    assert expected <= triggers


def test_a_removed_certificate_is_not_trusted_at_the_next_sign_in(
    sso_sdk, http, setup: Setup
) -> None:
    sign_in(sso_sdk, http, setup, [])  # the connection's settings are now cached
    (signing,) = sso_sdk.sso.list_connection_saml_idp_signing_certs(setup.connection_id).data
    _, other = make_key_and_cert("rotated")
    sso_sdk.sso.create_connection_saml_idp_signing_cert(setup.connection_id, value=other)
    sso_sdk.sso.delete_connection_saml_idp_signing_cert(setup.connection_id, signing.id)
    request_id = start_sign_in(http, setup.connection_id)
    response = setup.idp.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
    )
    refused = post_acs(http, setup, response)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "invalid_signature"


def test_mapping_removed_and_connection_deactivated_are_seen_at_the_next_sign_in(
    sso_sdk, http, setup: Setup
) -> None:
    admin, _ = _roles(sso_sdk, setup.org_id)
    mapping = _map(http, setup.connection_id, "Admins", admin)
    first, _ = sign_in(sso_sdk, http, setup, ["Admins"])
    assert first.profile.role.slug == admin
    removed = http.delete(f"/connections/{setup.connection_id}/group_role_mappings/{mapping['id']}")
    assert removed.status_code in (200, 202, 204), removed.text
    second, _ = sign_in(sso_sdk, http, setup, ["Admins"])
    assert second.profile.role.slug != admin
    request_id = start_sign_in(http, setup.connection_id)
    deactivated = http.post(f"/connections/{setup.connection_id}/deactivate")
    assert deactivated.json()["state"] == "inactive", deactivated.text
    response = setup.idp.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
    )
    refused = post_acs(http, setup, response)
    assert (refused.status_code, refused.json()["code"]) == (403, "connection_inactive")


def test_a_certificate_added_after_caching_is_trusted_at_the_next_sign_in(
    sso_sdk, http, setup: Setup
) -> None:
    """The IdP rotates: a certificate is added, then the IdP signs with its new key. The
    cached settings refuse the response; the sign-in is judged again against the
    current configuration, and accepted."""
    from sso.saml_idp import TestIdp

    sign_in(sso_sdk, http, setup, [])  # the connection's settings are now cached
    rotated = TestIdp(entity_id=setup.idp.entity_id)
    sso_sdk.sso.create_connection_saml_idp_signing_cert(setup.connection_id, value=rotated.cert)
    request_id = start_sign_in(http, setup.connection_id)
    response = rotated.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
    )
    accepted = post_acs(http, setup, response)
    assert accepted.status_code == 302, accepted.text
