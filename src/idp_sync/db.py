"""Database plumbing: declarative base, column types, engines and migrations.

Nothing here connects at import time: engines are built by ``make_engine`` from an app
factory, the CLI, or Celery's ``worker_process_init``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    Statement parameters are hidden from SQLAlchemy's error messages and logs: they can
    hold tokens, webhook secrets or SAML data.
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so that
        # a transaction's first read already holds the database (serialisable writes).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    # The pool's pessimistic ping, as pool_pre_ping would do it, unless the caller's first
    # statement serves as the ping (``connect_unpinged``).
    ping = kwargs.pop("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    if ping:
        dialect = engine.dialect

        @event.listens_for(engine, "checkout")
        def _ping_on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
            """pool_pre_ping's check with the dialect's own ping (autocommit, no open
            transaction left): a connection the server closed (a restart, an idle
            timeout) is replaced before the caller sees it (the pool retries on
            ``DisconnectionError``). Skipped inside ``connect_unpinged``."""
            if _unpinged.get():
                return
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise DisconnectionError(
                    f"pooled connection is gone: {type(exc).__name__}"
                ) from exc

    return engine


_unpinged: contextvars.ContextVar[bool] = contextvars.ContextVar("idp_sync_unpinged", default=False)


def connect_unpinged(engine: Engine, first: Callable[[Connection], T]) -> tuple[Connection, T]:
    """A pooled connection checked out without the ping, and ``first(conn)``: its first
    statement is the ping. A connection the server closed fails it as invalidated: it is
    replaced, pinged, and ``first`` runs again. ``first`` may write: a closed connection
    has no transaction left, so nothing of the first try remains. Saves a round trip per
    checkout on hot paths (the ACS)."""
    token = _unpinged.set(True)
    try:
        conn = engine.connect()
    finally:
        _unpinged.reset(token)
    try:
        return conn, first(conn)
    except DBAPIError as exc:
        conn.close()
        if not exc.connection_invalidated:
            raise
    conn = engine.connect()
    try:
        return conn, first(conn)
    except BaseException:
        conn.close()
        raise


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # autocommit at the driver; SQLAlchemy emits BEGIN
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def id_rows(session: Session, ids: Sequence[str], column: Any) -> Any:
    """``ids`` as a one-column table (``.c.id``) to join from, for set-based reads of a
    batch (thousands of memberships).

    PostgreSQL: ``unnest`` of one array parameter. An ``IN`` of thousands of parameters is
    a long statement to build, send, convert and plan on every call; ``= ANY(:array)`` in
    a prepared (generic) plan is a linear search per candidate row. Rows from ``unnest``
    are probed through ``column``'s index whatever the plan. Elsewhere (SQLite, small):
    a sub-select of ``column`` with ``IN``."""
    if is_postgres(session):
        array = bindparam(None, list(ids), type_=ARRAY(String))
        return func.unnest(array).table_valued("id").render_derived(name="batch_ids")
    return select(column.label("id")).where(column.in_(list(ids))).subquery("batch_ids")


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "postgresql"


# --- migrations -----------------------------------------------------------------------

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` to ``revision``: the only way tables are created."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision_is_head(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(
        alembic_config(engine.url.render_as_string(hide_password=False))
    )
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return set(current) == set(script.get_heads())
