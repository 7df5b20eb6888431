"""Group members, changed with set-based statements (issue 4 point 8).

A PATCH adding or removing thousands of members costs one INSERT ... SELECT and one
DELETE per chunk of ids, never a query per member. Ids that are not live users of the
group's directory are ignored; adding a member already present is a no-op (RFC 7644
§3.5.2.1), and so is removing one that is absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, literal, select
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from idp_sync.db import is_postgres
from idp_sync.directory import serializers as ser
from idp_sync.directory.models import DirectoryGroup, DirectoryUser
from idp_sync.directory.models import DirectoryGroupMember as Member
from idp_sync.events.services import record_events

CHUNK = 5000  # ids per statement: far below PostgreSQL's 65,535 bind parameters


@dataclass
class Delta:
    clear: bool = False  # replace the member set by ``add``
    add: Sequence[str] = ()
    remove: Iterable[str] = field(default_factory=set)


@dataclass
class Change:
    added: list[str]
    removed: list[str]

    @property
    def touched(self) -> list[str]:
        return sorted({*self.added, *self.removed})


def change(session: Session, group: DirectoryGroup, delta: Delta) -> Change:
    """Apply ``delta`` to the group's members and record ``dsync.group.user_*`` events."""
    to_add, to_remove = list(dict.fromkeys(delta.add)), set(delta.remove)
    if delta.clear:
        current = set(session.scalars(select(Member.user_id).where(Member.group_id == group.id)))
        wanted = set(to_add)
        to_remove, to_add = current - wanted, [i for i in to_add if i not in current]
    removed = _delete(session, group.id, sorted(to_remove))
    added = _insert(session, group, to_add)
    _events(session, group, added, "dsync.group.user_added")
    _events(session, group, removed, "dsync.group.user_removed")
    return Change(added, removed)


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _delete(session: Session, group_id: str, ids: Sequence[str]) -> list[str]:
    removed: list[str] = []
    for chunk in _chunks(ids):
        statement = (
            delete(Member)
            .where(Member.group_id == group_id, Member.user_id.in_(chunk))
            .returning(Member.user_id)
        )
        removed.extend(session.scalars(statement))
    return removed


def _insert(session: Session, group: DirectoryGroup, ids: Sequence[str]) -> list[str]:
    added: list[str] = []
    postgres = is_postgres(session)
    for chunk in _chunks(ids):
        already = exists().where(Member.group_id == group.id, Member.user_id == DirectoryUser.id)
        rows = (
            select(literal(group.id), DirectoryUser.id)
            .where(
                DirectoryUser.id.in_(chunk),
                DirectoryUser.directory_id == group.directory_id,
                DirectoryUser.deleted_at.is_(None),
                ~already,
            )
            .order_by(DirectoryUser.id)  # concurrent PATCHes take index entries in one order
        )
        if postgres:
            # Member PATCHes of one group run concurrently (the group row is only
            # share-locked): a member that a concurrent request added first is skipped,
            # not a unique violation, and only that request reports it added.
            statement: Any = (
                pg_insert(Member)
                .from_select([Member.group_id, Member.user_id], rows)
                .on_conflict_do_nothing()
            )
        else:
            statement = sa_insert(Member).from_select([Member.group_id, Member.user_id], rows)
        added.extend(session.scalars(statement.returning(Member.user_id)))
    return added


def _events(session: Session, group: DirectoryGroup, ids: Sequence[str], name: str) -> None:
    group_data = ser.directory_group(group)  # the same for every event of the request
    table = DirectoryUser.__table__
    for chunk in _chunks(sorted(ids)):
        # Plain rows, not ORM objects (most of a 5,000-member PATCH went to building
        # them): a row answers the same attribute names the serializer reads.
        rows: Any = session.execute(select(table).where(table.c.id.in_(chunk)).order_by(table.c.id))
        items = [ser.membership_event(u, group, group_data) for u in rows]
        record_events(session, name, items, organization_id=group.organization_id)


def member_rows(session: Session, group_id: str) -> list[tuple[str, str]]:
    """(id, display) of the group's members, for a full Group representation."""
    rows = session.execute(
        select(DirectoryUser.id, DirectoryUser.display_name, DirectoryUser.user_name)
        .join(Member, Member.user_id == DirectoryUser.id)
        .where(Member.group_id == group_id)
        .order_by(DirectoryUser.id)
    ).all()
    return [(user_id, display or user_name) for user_id, display, user_name in rows]
