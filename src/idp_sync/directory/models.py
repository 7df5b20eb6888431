"""Directory Sync tables: directories, the SCIM mirror (users, groups, members), the
directory events that drive the worker, and group-to-role mappings (DESIGN §2, §4)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from idp_sync.db import Base, JSONType, UTCDateTime, utcnow


class Directory(Base):
    """A SCIM directory of one organization; its bearer token is stored as SHA-256 only."""

    __tablename__ = "directories"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20), default="linked")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryUser(Base):
    """A SCIM User as the IdP sent it (``attributes``), with the columns filters use.

    ``user_name_key`` is the lower-cased userName, unique per directory (RFC 7643 §4.1.1:
    userName is case-insensitive); it is cleared on delete so the name can be reused.
    """

    __tablename__ = "directory_users"
    __table_args__ = (
        UniqueConstraint("directory_id", "user_name_key"),
        Index("ix_directory_users_directory_id_id", "directory_id", "id"),
        Index("ix_directory_users_directory_id_email", "directory_id", "email"),
    )

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(String(40))
    user_name: Mapped[str] = mapped_column(String(255))
    user_name_key: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The idp-sync user this directory user is linked to (by email, DESIGN §2).
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryGroup(Base):
    """A SCIM Group; ``display_name_key`` is unique per directory, case-insensitively."""

    __tablename__ = "directory_groups"
    __table_args__ = (
        UniqueConstraint("directory_id", "display_name_key"),
        Index("ix_directory_groups_directory_id_id", "directory_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(String(40))
    display_name: Mapped[str] = mapped_column(String(255))
    display_name_key: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryGroupMember(Base):
    """Group membership, written set-based (one statement per PATCH, not per member)."""

    __tablename__ = "directory_group_members"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("directory_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("directory_users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class DirectoryEvent(Base):
    """A change of the mirror that the worker must turn into membership roles (DESIGN §4).

    ``user_ids`` lists the directory users it touches, or ``group_id`` a group whose
    current members it touches. ``processed_at`` is set when a worker folded it in.
    """

    __tablename__ = "directory_events"
    __table_args__ = (
        Index("ix_directory_events_pending", "directory_id", "processed_at", "id"),
        # The oldest pending events of any directory (``sync.take_pending_event``).
        Index(
            "ix_directory_events_unprocessed",
            "id",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    user_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    group_id: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The request's that wrote it, for the worker's logs (the event is its own message).
    correlation_id: Mapped[str | None] = mapped_column(String(64))


class PendingMemberEvents(Base):
    """The ``dsync.group.user_added`` / ``user_removed`` events of one member PATCH taken
    on the event loop, reserved rather than written: the request commits the members, the
    worker's directory events and this row together; the sequencer writes the events from
    it (``directory.member_events``) before it positions anything, so they take their
    place in the stream by their reserved ids, as if the request had written them.

    ``id`` is the first reserved event id; ``added`` then ``removed`` (user ids, sorted)
    take the ids that follow it (``ids.ids_from``), in that order.
    """

    __tablename__ = "pending_member_events"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(50))
    directory_id: Mapped[str] = mapped_column(String(50))
    group_id: Mapped[str] = mapped_column(String(50))
    added: Mapped[list[str]] = mapped_column(JSONType, default=list)
    removed: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupRoleMapping(Base):
    """A directory group (by id, or by name before the first push) mapped to a role.

    ``group_key`` is what the resolver matches: the group id, or ``name:`` + the
    lower-cased name (DESIGN §2: names match displayName case-insensitively).
    """

    __tablename__ = "directory_group_role_mappings"
    __table_args__ = (UniqueConstraint("directory_id", "group_key", "role_slug"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    directory_id: Mapped[str] = mapped_column(
        ForeignKey("directories.id", ondelete="CASCADE"), index=True
    )
    group: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(String(260))
    role_slug: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
