"""Bulk seeding for bench/role_deletion.py: databases, COPY of memberships, anchors.

Everything here talks to PostgreSQL through psycopg 3 directly (COPY, plain SQL): the
point is to build a million memberships in seconds and to measure the floor of the writes
a job makes, not to exercise idp-sync's own write path.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from dataclasses import dataclass

import psycopg

PG_ADMIN_URL = os.environ.get(
    "IDP_SYNC_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
EVENT = "organization_membership.updated"


def conninfo(url: str) -> str:
    """A libpq URL from an SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def db_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def new_db_name(tag: str) -> str:
    return f"idp_sync_bench_rd_{os.getpid()}_{tag}_{uuid.uuid4().hex[:6]}"


def _admin(sql: str) -> None:
    with psycopg.connect(conninfo(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(sql)


def create_database(name: str) -> str:
    _admin(f'CREATE DATABASE "{name}"')
    return db_url(name)


def clone_database(source: str, name: str) -> str:
    """An identical copy (file-level, ``TEMPLATE``): nobody may be connected to ``source``."""
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    return db_url(name)


def set_work_mem(name: str, size: str) -> None:
    if not size.replace("MB", "").replace("GB", "").replace("kB", "").isdigit():
        raise ValueError(f"work_mem {size!r}")
    _admin(f"ALTER DATABASE \"{name}\" SET work_mem = '{size}'")


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Seeded:
    memberships: int
    organizations: int
    role_id: str  # the role every membership holds (``doomed`` or ``member``)
    role_slug: str
    default_role_id: str  # ``member``
    seconds: float


def _provenance(source: str, uses_default: bool) -> str:
    return json.dumps(
        {"source": source, "uses_default": uses_default, "matched_groups": [], "mapping_ids": []}
    )


def seed(url: str, *, memberships: int, orgs: int, kind: str) -> Seeded:
    """Organizations, users and memberships, by COPY, on a migrated database.

    ``kind="deletion"``: an environment role ``doomed`` (bottom of the priority order) held
    by every membership as its effective role and its API role (role_source "api").
    ``kind="default"``: every membership on the default role ``member`` (uses_default).
    Membership ``i`` belongs to organization ``i % orgs``: ids (creation order) interleave
    across organizations, as memberships created over time do.
    """
    from idp_sync.ids import new_id

    t0 = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(conninfo(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM roles WHERE scope = 'environment' AND slug = 'member'")
        member_id = cur.fetchone()[0]
        if kind == "deletion":
            role_id, role_slug = new_id("role"), "doomed"
            cur.execute(
                "INSERT INTO roles (id, scope, organization_id, slug, name, description, "
                "resource_type_slug, created_at, updated_at) "
                "VALUES (%s, 'environment', NULL, %s, 'Doomed', NULL, 'organization', %s, %s)",
                (role_id, role_slug, now, now),
            )
            cur.execute(
                "UPDATE environment_settings SET priority_order = priority_order || %s::jsonb",
                (json.dumps([role_slug]),),
            )
            source, uses_default = "api", False
        elif kind == "default":
            role_id, role_slug = member_id, "member"
            source, uses_default = "default", True
        else:
            raise ValueError(kind)
        org_ids = [new_id("organization") for _ in range(orgs)]
        with cur.copy(
            "COPY organizations (id, name, metadata, allow_profiles_outside_organization, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for j, org_id in enumerate(org_ids):
                copy.write_row((org_id, f"Bench Org {j}", "{}", False, now, now))
        user_ids = [new_id("user") for _ in range(memberships)]
        with cur.copy(
            "COPY users (id, email, first_name, last_name, name, email_verified, metadata, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for i, user_id in enumerate(user_ids):
                copy.write_row(
                    (user_id, f"bench-{i}@example.com", "Bench", f"User {i}", f"Bench User {i}",
                     True, "{}", now, now)
                )  # fmt: skip
        membership_ids = [new_id("membership") for _ in range(memberships)]
        provenance = _provenance(source, uses_default)
        with cur.copy(
            "COPY organization_memberships (id, organization_id, user_id, status, "
            "directory_managed, role_source, uses_default, provenance, custom_attributes, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for i, (mid, user_id) in enumerate(zip(membership_ids, user_ids, strict=True)):
                copy.write_row(
                    (mid, org_ids[i % orgs], user_id, "active", False, source, uses_default,
                     provenance, "{}", now, now)
                )  # fmt: skip
        tables = ["organization_membership_roles"]
        if kind == "deletion":
            tables.append("organization_membership_api_roles")
        for table in tables:
            with cur.copy(
                f"COPY {table} (membership_id, role_id, role_slug, position) FROM STDIN"
            ) as copy:
                for mid in membership_ids:
                    copy.write_row((mid, role_id, role_slug, 0))
        conn.commit()
    settle(url)
    return Seeded(memberships, orgs, role_id, role_slug, member_id, time.perf_counter() - t0)


def add_role(url: str, slug: str) -> str:
    """An environment role at the bottom of the priority order (the anchor's clone of a
    database where the job's scenario created it through the API)."""
    from idp_sync.ids import new_id

    role_id = new_id("role")
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(conninfo(url)) as conn:
        conn.execute(
            "INSERT INTO roles (id, scope, organization_id, slug, name, description, "
            "resource_type_slug, created_at, updated_at) "
            "VALUES (%s, 'environment', NULL, %s, %s, NULL, 'organization', %s, %s)",
            (role_id, slug, slug.title(), now, now),
        )
        conn.execute(
            "UPDATE environment_settings SET priority_order = priority_order || %s::jsonb",
            (json.dumps([slug]),),
        )
    return role_id


def settle(url: str) -> None:
    """VACUUM ANALYZE, and autovacuum off for the bench tables: an autovacuum of a table
    just rewritten would otherwise land inside one measurement and not the other."""
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        for (table,) in tables:
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


# --- the anchor: bare SQL doing the same row writes -------------------------------------

_EVENT_DATA = """jsonb_build_object(
    'object', 'organization_membership', 'id', m.id, 'user_id', m.user_id,
    'organization_id', m.organization_id, 'status', m.status,
    'role', jsonb_build_object('slug', %(slug)s::text),
    'roles', jsonb_build_array(jsonb_build_object('slug', %(slug)s::text)),
    'directory_managed', m.directory_managed, 'custom_attributes', m.custom_attributes,
    'created_at', m.created_at, 'updated_at', now())"""


def anchor(
    url: str,
    *,
    old_role_id: str,
    new_role_id: str,
    new_slug: str,
    batch: int = 5000,
    full: bool = False,
    memberships_only: bool = False,
) -> tuple[float, int]:
    """Move every membership's role row from ``old_role_id`` to ``new_role_id`` and write
    one ``organization_membership.updated`` event each, ``batch`` memberships a transaction
    by primary-key range (the batch's upper id found first with ``OFFSET batch-1 LIMIT 1``).

    ``full=True`` also makes the job's other writes: the membership row (provenance,
    source, updated_at) and an audit row each. ``memberships_only=True`` is the anchor as
    issue 6 words it: an UPDATE of the memberships plus an event INSERT each, no role rows.
    Returns (seconds, memberships written).
    """
    params = {"old": old_role_id, "new": new_role_id, "slug": new_slug}
    written = 0
    with psycopg.connect(conninfo(url)) as conn, conn.cursor() as cur:
        t0 = time.perf_counter()
        lo = ""
        while True:
            cur.execute(
                "SELECT id FROM organization_memberships WHERE id > %s ORDER BY id "
                "OFFSET %s LIMIT 1",
                (lo, batch - 1),
            )
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT max(id) FROM organization_memberships WHERE id > %s", (lo,))
                row = cur.fetchone()
                if row is None or row[0] is None:
                    conn.commit()
                    break
            hi = row[0]
            p = {**params, "lo": lo, "hi": hi}
            if not memberships_only:
                cur.execute(
                    "UPDATE organization_membership_roles SET role_id = %(new)s, "
                    "role_slug = %(slug)s WHERE membership_id > %(lo)s "
                    "AND membership_id <= %(hi)s AND role_id = %(old)s",
                    p,
                )
                written += cur.rowcount
            cur.execute(
                "INSERT INTO events (id, event, data, organization_id, created_at) "
                f"SELECT 'event_' || m.id, '{EVENT}', {_EVENT_DATA}, m.organization_id, now() "
                "FROM organization_memberships m WHERE m.id > %(lo)s AND m.id <= %(hi)s",
                p,
            )
            if full or memberships_only:
                cur.execute(
                    "UPDATE organization_memberships SET updated_at = now(), "
                    "role_source = 'default', uses_default = true, provenance = %(prov)s::jsonb "
                    "WHERE id > %(lo)s AND id <= %(hi)s",
                    {**p, "prov": _provenance("default", True)},
                )
                if memberships_only:
                    written += cur.rowcount
            if full:
                cur.execute(
                    "INSERT INTO organization_membership_audit (membership_id, organization_id, "
                    "before_roles, after_roles, source, reason, created_at) "
                    "SELECT m.id, m.organization_id, '[\"old\"]'::jsonb, "
                    "jsonb_build_array(%(slug)s::text), 'default', 'anchor', now() "
                    "FROM organization_memberships m WHERE m.id > %(lo)s AND m.id <= %(hi)s",
                    p,
                )
            conn.commit()
            lo = hi
        return time.perf_counter() - t0, written


def scalar(url: str, sql: str, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(conninfo(url)) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def count(url: str, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(scalar(url, sql, params) or 0)
