"""Real worker processes and bulk-seeded memberships for the job tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import API_KEY, unique
from idp_sync.config import Settings
from idp_sync.db import utcnow
from idp_sync.ids import new_id
from idp_sync.memberships.models import MembershipRole, OrganizationMembership
from idp_sync.organizations.models import Organization
from idp_sync.rbac.models import Role
from idp_sync.users.models import User


def seed_default_members(engine: sa.Engine, org_id: str, count: int) -> list[str]:
    """Memberships on the default role, written in bulk (the API would take too long)."""
    now = utcnow()
    with Session(engine) as db, db.begin():
        member = db.scalar(
            sa.select(Role).where(Role.scope == "environment", Role.slug == "member")
        )
        assert member is not None
        db.add(Organization(id=org_id, name="Killed", metadata_={}, created_at=now, updated_at=now))
        db.flush()
        users = [
            {
                "id": new_id("user"),
                "email": f"{unique('k')}@example.com",
                "email_verified": False,
                "metadata": {},
                "created_at": now,
                "updated_at": now,
            }
            for _ in range(count)
        ]
        db.execute(sa.insert(User.__table__), users)
        memberships = [
            {
                "id": new_id("membership"),
                "organization_id": org_id,
                "user_id": u["id"],
                "status": "active",
                "directory_managed": False,
                "role_source": "default",
                "uses_default": True,
                "provenance": {},
                "custom_attributes": {},
                "created_at": now,
                "updated_at": now,
            }
            for u in users
        ]
        db.execute(sa.insert(OrganizationMembership.__table__), memberships)
        db.execute(
            sa.insert(MembershipRole.__table__),
            [
                {
                    "membership_id": m["id"],
                    "role_id": member.id,
                    "role_slug": "member",
                    "position": 0,
                }
                for m in memberships
            ],
        )
    return [m["id"] for m in memberships]


def worker_env(settings: Settings, log_level: str, **extra: str) -> dict[str, str]:
    """The environment a worker process needs to share ``settings``' database, broker
    (and key prefix) and data directory; ``extra`` settings as environment variables."""
    return {
        "DATABASE_URL": settings.effective_database_url,
        "BROKER_URL": settings.effective_broker_url,
        "IDP_SYNC_API_KEY": API_KEY,
        "IDP_SYNC_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "IDP_SYNC_DATA_DIR": str(settings.data_dir),
        "IDP_SYNC_LOG_LEVEL": log_level,
        **extra,
    }


def start_worker(
    settings_env: dict[str, str], tmp_path: Path, log: str = "worker.log"
) -> subprocess.Popen[bytes]:
    """A real worker process on the ``bulk`` queue (solo pool: one job at a time)."""
    env = {**os.environ, **settings_env}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "idp_sync.cli",
            "worker",
            "-Q",
            "bulk",
            "-c",
            "1",
            "-P",
            "solo",
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / log, "ab"),
    )
