"""SCIM writes to the directory mirror (DESIGN §4 "SCIM request").

Each write changes the mirror, records its ``dsync.*`` events and a ``DirectoryEvent``
row, and enqueues the sync task (event id only) in the caller's transaction: all commit
together or not at all. Membership roles are the worker's business (``directory.sync``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from idp_sync.context import current_correlation_id
from idp_sync.db import utcnow
from idp_sync.directory import members
from idp_sync.directory import serializers as ser
from idp_sync.directory.attributes import (
    attr_get,
    attr_key,
    clean_text,
    column_values,
    user_columns,
)
from idp_sync.directory.models import Directory, DirectoryEvent, DirectoryGroup, DirectoryUser
from idp_sync.directory.models import DirectoryGroupMember as Member
from idp_sync.directory.scim.errors import InvalidValue, ScimNotFound, Uniqueness
from idp_sync.directory.scim.patch import PatchOp, apply_patch, member_ids, split_members
from idp_sync.directory.scim.schemas import GROUP, USER
from idp_sync.directory.services import MAPPING_JOB
from idp_sync.events.services import record_event
from idp_sync.ids import new_id
from idp_sync.jobs.services import start_job
from idp_sync.tasks import enqueue

SYNC_TASK = "idp_sync.directory.sync"
EVENT_CHUNK = 1000  # directory users per directory event
NOT_STORED = frozenset({"id", "meta", "schemas", "password"})


def directory_events(
    session: Session, directory_id: str, kind: str, user_ids: Sequence[str], group_id: str
) -> None:
    """One event per ``EVENT_CHUNK`` users, so that no sync transaction grows unbounded."""
    for start in range(0, len(user_ids), EVENT_CHUNK):
        chunk = user_ids[start : start + EVENT_CHUNK]
        directory_event(session, directory_id, kind, user_ids=chunk, group_id=group_id)


def directory_event(
    session: Session,
    directory_id: str,
    kind: str,
    *,
    user_ids: Sequence[str] = (),
    group_id: str | None = None,
) -> DirectoryEvent:
    """Record work for the worker and enqueue it after commit (id only)."""
    event = DirectoryEvent(
        id=new_id("directory_event"),
        directory_id=directory_id,
        kind=kind,
        user_ids=list(user_ids),
        group_id=group_id,
        created_at=utcnow(),
        correlation_id=current_correlation_id(),
    )
    session.add(event)
    enqueue(session, SYNC_TASK, queue="sync", event_id=event.id)
    return event


# --- users ----------------------------------------------------------------------------


def get_user(session: Session, directory: Directory, user_id: str) -> DirectoryUser:
    user = session.scalar(
        select(DirectoryUser).where(
            DirectoryUser.id == user_id,
            DirectoryUser.directory_id == directory.id,
            DirectoryUser.deleted_at.is_(None),
        )
    )
    if user is None:
        raise ScimNotFound(f"User {user_id} not found")
    return user


def create_user(session: Session, directory: Directory, body: dict[str, Any]) -> DirectoryUser:
    """RFC 7644 §3.3: a new User; a taken userName (case-insensitively) is 409 uniqueness."""
    values = new_user_values(directory.id, directory.organization_id, body)
    _check_user_name(session, directory.id, values["user_name"], None)
    user = DirectoryUser(**values)
    session.add(user)
    session.flush()
    record_event(
        session,
        "dsync.user.created",
        ser.directory_user(user),
        organization_id=directory.organization_id,
    )
    directory_event(session, directory.id, "user.created", user_ids=[user.id])
    return user


def new_user_values(
    directory_id: str, organization_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The row of a new User for ``body`` (``InvalidValue`` where RFC 7643 refuses it)."""
    attrs = stored(body)
    now = utcnow()
    return {
        "id": new_id("directory_user"),
        "directory_id": directory_id,
        "organization_id": organization_id,
        "attributes": attrs,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        **column_values(user_columns(attrs)),
    }


def replace_user(
    session: Session, directory: Directory, user: DirectoryUser, body: dict[str, Any]
) -> DirectoryUser:
    """RFC 7644 §3.5.1: PUT replaces every attribute the client may set."""
    return _write_user(session, directory, user, stored(body))


def patch_user(
    session: Session, directory: Directory, user: DirectoryUser, ops: list[PatchOp]
) -> DirectoryUser:
    """RFC 7644 §3.5.2: apply ``ops``; a PATCH that changes nothing writes nothing."""
    current = {**user.attributes, "schemas": [USER]}
    patched = {k: v for k, v in apply_patch(current, ops).items() if k != "schemas"}
    return _write_user(session, directory, user, patched)


def _write_user(
    session: Session, directory: Directory, user: DirectoryUser, attrs: dict[str, Any]
) -> DirectoryUser:
    columns = user_columns(attrs)
    if attrs == user.attributes:
        return user
    _check_user_name(session, directory.id, columns.user_name, user.id)
    previous = ser.directory_user(user)
    user.attributes = attrs
    for key, value in column_values(columns).items():
        setattr(user, key, value)
    user.version += 1
    user.updated_at = utcnow()
    session.flush()
    data = ser.directory_user(user)
    data["previous_attributes"] = {k: v for k, v in previous.items() if data.get(k) != v}
    data["previous_attributes"].pop("updated_at", None)
    record_event(session, "dsync.user.updated", data, organization_id=directory.organization_id)
    directory_event(session, directory.id, "user.updated", user_ids=[user.id])
    return user


def delete_user(session: Session, directory: Directory, user: DirectoryUser) -> None:
    """RFC 7644 §3.6: gone for SCIM (404 after); the row stays for history and the worker."""
    now = utcnow()
    user.deleted_at, user.user_name_key, user.active = now, None, False
    user.updated_at = now
    session.execute(delete(Member).where(Member.user_id == user.id))
    session.flush()
    record_event(
        session,
        "dsync.user.deleted",
        ser.directory_user(user),
        organization_id=directory.organization_id,
    )
    directory_event(session, directory.id, "user.deleted", user_ids=[user.id])


def _check_user_name(session: Session, directory_id: str, name: str, own: str | None) -> None:
    other = session.scalar(
        select(DirectoryUser.id).where(
            DirectoryUser.directory_id == directory_id,
            DirectoryUser.user_name_key == name.lower(),
        )
    )
    if other is not None and other != own:
        raise Uniqueness(f"userName '{name}' is already taken in this directory")


# --- groups ---------------------------------------------------------------------------


def get_group(
    session: Session,
    directory: Directory,
    group_id: str,
    *,
    lock: bool = False,
    shared: bool = False,
) -> DirectoryGroup:
    """The live group; ``lock`` holds its row until commit, ``shared`` as a share lock
    (see ``members_only``)."""
    query = select(DirectoryGroup).where(
        DirectoryGroup.id == group_id,
        DirectoryGroup.directory_id == directory.id,
        DirectoryGroup.deleted_at.is_(None),
    )
    if lock:
        query = query.with_for_update(read=shared)
    group = session.scalar(query)
    if group is None:
        raise ScimNotFound(f"Group {group_id} not found")
    return group


def create_group(session: Session, directory: Directory, body: dict[str, Any]) -> DirectoryGroup:
    """RFC 7644 §3.3: a new Group, with the ``members`` it names (Okta sends them here)."""
    attrs = stored(body)
    wanted = member_ids(attrs.pop(attr_key(attrs, "members"), None))
    name = _display_name(attrs)
    _check_display_name(session, directory.id, name, None)
    now = utcnow()
    group = DirectoryGroup(
        id=new_id("directory_group"),
        directory_id=directory.id,
        organization_id=directory.organization_id,
        display_name=name,
        display_name_key=name.lower(),
        external_id=clean_text(attr_get(attrs, "externalId")),
        attributes=attrs,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(group)
    session.flush()
    record_event(
        session,
        "dsync.group.created",
        ser.directory_group(group),
        organization_id=directory.organization_id,
    )
    change = members.change(session, group, members.Delta(clear=False, add=wanted))
    directory_events(session, directory.id, "group.created", change.touched, group.id)
    return group


def replace_group(
    session: Session, directory: Directory, group: DirectoryGroup, body: dict[str, Any]
) -> DirectoryGroup:
    """PUT: attributes replaced; ``members``, when given, replace the member set (Okta).
    Absent ``members`` leave members alone, so a rename never empties a group."""
    attrs = stored(body)
    key = attr_key(attrs, "members")
    delta = None
    if key in attrs:
        delta = members.Delta(clear=True, add=member_ids(attrs.pop(key)))
    return _write_group(session, directory, group, attrs, delta)


def members_only(ops: list[PatchOp]) -> bool:
    """A PATCH that changes only members leaves the group row alone: it needs the row
    share-locked (not renamed nor deleted meanwhile), not exclusively. IdPs push member
    changes to one group concurrently; exclusively, they would queue behind each other."""
    rest, delta = split_members(ops)
    return not rest and not delta.clear  # a replace of the member set stays exclusive


def patch_group(
    session: Session, directory: Directory, group: DirectoryGroup, ops: list[PatchOp]
) -> DirectoryGroup:
    """RFC 7644 §3.5.2 on a Group: attribute ops on the document, member ops set-based."""
    rest, member_delta = split_members(ops)
    attrs = group.attributes
    if rest:
        current = {**attrs, "schemas": [GROUP]}
        attrs = {k: v for k, v in apply_patch(current, rest).items() if k != "schemas"}
    delta = None
    if not member_delta.empty:
        delta = members.Delta(
            clear=member_delta.clear, add=list(member_delta.add), remove=member_delta.remove
        )
    return _write_group(session, directory, group, attrs, delta)


def _write_group(
    session: Session,
    directory: Directory,
    group: DirectoryGroup,
    attrs: dict[str, Any],
    delta: members.Delta | None,
) -> DirectoryGroup:
    renamed = False
    if attrs != group.attributes:
        name = _display_name(attrs)
        _check_display_name(session, directory.id, name, group.id)
        renamed = name.lower() != group.display_name_key
        group.attributes, group.display_name, group.display_name_key = attrs, name, name.lower()
        group.external_id = clean_text(attr_get(attrs, "externalId"))
        group.version += 1
        group.updated_at = utcnow()
        session.flush()
        record_event(
            session,
            "dsync.group.updated",
            ser.directory_group(group),
            organization_id=directory.organization_id,
        )
    touched: list[str] = []
    if delta is not None:
        touched = members.change(session, group, delta).touched
    if renamed:  # mappings by name may now match or stop matching: all members
        _group_job(session, directory, group)
    if touched:
        directory_events(session, directory.id, "group.members", touched, group.id)
    return group


def delete_group(session: Session, directory: Directory, group: DirectoryGroup) -> None:
    """Soft delete: member rows stay so the job can find whom the deletion affects."""
    now = utcnow()
    group.deleted_at, group.display_name_key, group.updated_at = now, None, now
    session.flush()
    record_event(
        session,
        "dsync.group.deleted",
        ser.directory_group(group),
        organization_id=directory.organization_id,
    )
    _group_job(session, directory, group)


def _group_job(session: Session, directory: Directory, group: DirectoryGroup) -> None:
    """A rename or deletion touches every member: a job on the ``bulk`` queue recomputes
    them in batches (DESIGN §4), so a 50,000-member group never blocks the ``sync`` queue."""
    params = {
        "organization_id": directory.organization_id,
        "directory_id": directory.id,
        "group_id": group.id,
    }
    start_job(session, MAPPING_JOB, params, created_by=f"scim:{directory.id}")


def _display_name(attrs: dict[str, Any]) -> str:
    name = attr_get(attrs, "displayName")
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("displayName is required")  # RFC 7643 §4.2
    return name.strip()


def _check_display_name(session: Session, directory_id: str, name: str, own: str | None) -> None:
    other = session.scalar(
        select(DirectoryGroup.id).where(
            DirectoryGroup.directory_id == directory_id,
            DirectoryGroup.display_name_key == name.lower(),
        )
    )
    if other is not None and other != own:
        raise Uniqueness(f"displayName '{name}' is already taken in this directory")


# --- helpers --------------------------------------------------------------------------


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """The attributes kept for a resource: all the client sent (unknown ones included),
    minus server-owned ones and ``password`` (RFC 7643 §4.1.1: never returned; Okta sends
    one on create, and this server authenticates nobody with it)."""
    return {k: v for k, v in body.items() if k.lower() not in NOT_STORED}
