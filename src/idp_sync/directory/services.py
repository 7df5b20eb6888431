"""Use cases for directories, their SCIM tokens and their group-to-role mappings.

Services decide; they never commit (the HTTP unit of work or the task owns the
transaction). A mapping change starts a recompute job on the ``bulk`` queue in the same
transaction (DESIGN §4).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from idp_sync.db import utcnow
from idp_sync.directory.models import Directory, DirectoryUser, GroupRoleMapping
from idp_sync.errors import Conflict, NotFound, Unprocessable
from idp_sync.ids import new_id
from idp_sync.jobs.models import Job
from idp_sync.jobs.services import start_job
from idp_sync.organizations.services import get_organization
from idp_sync.rbac.services import find_role

TOKEN_PREFIX = "scim_"  # noqa: S105 (a prefix, not a secret)
DIRECTORY_TYPES = ("okta scim v2.0", "azure scim v2.0", "generic scim v2.0")
GROUP_ID = re.compile(r"^directory_group_[0-9A-HJKMNP-TV-Z]{26}$")
MAPPING_JOB = "directory_mapping_change"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits of randomness


# --- directories ----------------------------------------------------------------------


def create_directory(
    session: Session, *, organization_id: str, name: str, directory_type: str
) -> tuple[Directory, str]:
    """A new directory and its bearer token (returned once, stored as SHA-256 only)."""
    get_organization(session, organization_id)
    if directory_type not in DIRECTORY_TYPES:
        raise Unprocessable(
            f"type must be one of {', '.join(DIRECTORY_TYPES)}",
            errors=[{"code": "invalid", "field": "type"}],
        )
    raw = _new_token()
    now = utcnow()
    directory = Directory(
        id=new_id("directory"),
        organization_id=organization_id,
        name=name,
        type=directory_type,
        state="linked",
        token_hash=hash_token(raw),
        created_at=now,
        updated_at=now,
    )
    session.add(directory)
    session.flush()
    return directory, raw


def get_directory(session: Session, directory_id: str) -> Directory:
    directory = session.get(Directory, directory_id)
    if directory is None:
        raise NotFound(f"directory {directory_id} not found")
    return directory


def rotate_token(session: Session, directory_id: str) -> tuple[Directory, str]:
    """A new bearer token; the previous one stops working when this commits."""
    directory = session.get(Directory, directory_id, with_for_update=True)
    if directory is None:
        raise NotFound(f"directory {directory_id} not found")
    raw = _new_token()
    directory.token_hash = hash_token(raw)
    directory.updated_at = utcnow()
    return directory, raw


def directory_for_token(session: Session, raw_token: str) -> Directory | None:
    """The directory ``raw_token`` opens, if any; hashes compared in constant time (DESIGN §7)."""
    digest = hash_token(raw_token)
    directory = session.scalar(select(Directory).where(Directory.token_hash == digest))
    if directory is None or not hmac.compare_digest(directory.token_hash, digest):
        return None
    return directory


def delete_directory(session: Session, directory: Directory, *, actor: str) -> None:
    """Delete the directory and its mirror; its memberships fall back to API/default roles."""
    organization_id = directory.organization_id
    session.delete(directory)
    session.flush()
    start_job(
        session,
        MAPPING_JOB,
        {"organization_id": organization_id, "directory_managed": True},
        created_by=actor,
    )


def list_query(*, organization_id: str | None, search: str | None) -> Select[tuple[Directory]]:
    query = select(Directory)
    if organization_id:
        query = query.where(Directory.organization_id == organization_id)
    if search:
        query = query.where(func.lower(Directory.name).contains(search.lower(), autoescape=True))
    return query


def user_counts(session: Session, directory_id: str) -> tuple[int, int]:
    """(active, inactive) live users of the directory."""
    rows = session.execute(
        select(DirectoryUser.active, func.count())
        .where(DirectoryUser.directory_id == directory_id, DirectoryUser.deleted_at.is_(None))
        .group_by(DirectoryUser.active)
    ).all()
    counts = {bool(active): int(n) for active, n in rows}
    return counts.get(True, 0), counts.get(False, 0)


# --- group-to-role mappings -----------------------------------------------------------


def group_key(group: str) -> str:
    """What the resolver matches: a directory group id as is, else ``name:`` + lower name."""
    value = group.strip()
    return value if GROUP_ID.fullmatch(value) else "name:" + value.lower()


def get_mapping(session: Session, directory_id: str, mapping_id: str) -> GroupRoleMapping:
    mapping = session.get(GroupRoleMapping, mapping_id)
    if mapping is None or mapping.directory_id != directory_id:
        raise NotFound(f"group role mapping {mapping_id} not found")
    return mapping


def _check_mapping(session: Session, directory: Directory, group: str, role_slug: str) -> str:
    if not group.strip():
        raise Unprocessable(
            "group must not be empty", errors=[{"code": "required", "field": "group"}]
        )
    if find_role(session, directory.organization_id, role_slug) is None:
        raise Unprocessable(
            f"role '{role_slug}' is not available in this organization",
            code="role_not_found",
            errors=[{"code": "role_not_found", "field": "role_slug"}],
        )
    return group_key(group)


def _unique(session: Session, directory_id: str, key: str, slug: str, own: str | None) -> None:
    other = session.scalar(
        select(GroupRoleMapping.id).where(
            GroupRoleMapping.directory_id == directory_id,
            GroupRoleMapping.group_key == key,
            GroupRoleMapping.role_slug == slug,
        )
    )
    if other is not None and other != own:
        raise Conflict("this group is already mapped to this role", code="mapping_exists")


def create_mapping(
    session: Session, directory: Directory, *, group: str, role_slug: str, actor: str
) -> tuple[GroupRoleMapping, Job]:
    """Map ``group`` to ``role_slug`` and start the job that recomputes the directory's members."""
    key = _check_mapping(session, directory, group, role_slug)
    _unique(session, directory.id, key, role_slug, None)
    now = utcnow()
    mapping = GroupRoleMapping(
        id=new_id("group_role_mapping"),
        directory_id=directory.id,
        group=group.strip(),
        group_key=key,
        role_slug=role_slug,
        created_at=now,
        updated_at=now,
    )
    session.add(mapping)
    session.flush()
    return mapping, _mapping_job(session, directory, actor)


def update_mapping(
    session: Session,
    directory: Directory,
    mapping_id: str,
    *,
    group: str | None,
    role_slug: str | None,
    actor: str,
) -> tuple[GroupRoleMapping, Job]:
    mapping = get_mapping(session, directory.id, mapping_id)
    new_group = group if group is not None else mapping.group
    new_slug = role_slug if role_slug is not None else mapping.role_slug
    key = _check_mapping(session, directory, new_group, new_slug)
    _unique(session, directory.id, key, new_slug, mapping.id)
    mapping.group, mapping.group_key, mapping.role_slug = new_group.strip(), key, new_slug
    mapping.updated_at = utcnow()
    return mapping, _mapping_job(session, directory, actor)


def delete_mapping(session: Session, directory: Directory, mapping_id: str, *, actor: str) -> Job:
    mapping = get_mapping(session, directory.id, mapping_id)
    session.execute(delete(GroupRoleMapping).where(GroupRoleMapping.id == mapping.id))
    return _mapping_job(session, directory, actor)


def _mapping_job(session: Session, directory: Directory, actor: str) -> Job:
    params = {"organization_id": directory.organization_id, "directory_id": directory.id}
    return start_job(session, MAPPING_JOB, params, created_by=actor)


def mappings_of(session: Session, directory_id: str) -> list[GroupRoleMapping]:
    return list(
        session.scalars(
            select(GroupRoleMapping)
            .where(GroupRoleMapping.directory_id == directory_id)
            .order_by(GroupRoleMapping.id)
        )
    )
