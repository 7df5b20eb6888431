"""The process's runtime: settings, database engine, sessions, the async read pool and the
Celery app.

Built by factories (``create_app``, ``create_celery_app``, the CLI), never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, Select, TextClause, make_url
from sqlalchemy.orm import Session, sessionmaker

from idp_sync.config import Settings, get_settings
from idp_sync.config_cache import ConfigCache
from idp_sync.db import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from celery import Celery

Row = dict[str, Any]
# How long a read waits for a pooled connection (the database down or saturated) before
# failing, rather than holding the client for psycopg_pool's default 30 s.
POOL_TIMEOUT_SECONDS = 10.0
READ_POOL = "idp-sync-read"


class Reader(Protocol):
    """Runs one read-only statement for an ``async def`` endpoint (the hot GET paths).

    Statements are module-level constants whose values come as bound parameters
    (``bindparam``): each is compiled once and kept.
    """

    loop: asyncio.AbstractEventLoop

    async def rows(
        self, statement: Select[Any] | TextClause, params: Mapping[str, Any]
    ) -> list[Row]: ...

    async def close(self) -> None: ...


class PostgresReader:
    """Read-only statements on a pool of async psycopg connections, on the event loop.

    No threadpool hop, no ORM, no session: the statement is compiled once and sent as is.
    Connections are in autocommit, so one statement is one round trip (no BEGIN, no
    ROLLBACK on return) and sees committed data only. Results are psycopg's own types
    (aware datetimes, JSON as dicts): callers render them with ``wire.iso`` and ``dict``
    as the sync path does, and a test checks that both answer alike.
    """

    def __init__(self, url: str, max_size: int = 10) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        self.loop = asyncio.get_running_loop()
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            # application_name: these connections are told apart in pg_stat_activity.
            kwargs={"autocommit": True, "row_factory": dict_row, "application_name": READ_POOL},
            open=False,
            name=READ_POOL,
            timeout=POOL_TIMEOUT_SECONDS,
        )
        self._open = False
        self._sql: dict[int, tuple[Any, str, dict[str, Any]]] = {}

    def _compiled(self, statement: Select[Any] | TextClause) -> tuple[str, dict[str, Any]]:
        # Keyed by identity and holding the statement, so the id is never reused.
        hit = self._sql.get(id(statement))
        if hit is None:
            from sqlalchemy.dialects.postgresql.psycopg import dialect

            compiled = statement.compile(dialect=dialect())  # type: ignore[no-untyped-call]
            hit = (statement, str(compiled), dict(compiled.params))
            self._sql[id(statement)] = hit
        return hit[1], hit[2]

    async def rows(
        self, statement: Select[Any] | TextClause, params: Mapping[str, Any]
    ) -> list[Row]:
        import psycopg
        from psycopg_pool import PoolClosed, PoolTimeout

        sql, defaults = self._compiled(statement)
        if not self._open:
            await self._pool.open()
            self._open = True
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as conn:
                    cursor = await conn.execute(sql, {**defaults, **params})
                    rows: list[Row] = await cursor.fetchall()
                    return rows
            except (PoolTimeout, PoolClosed):
                raise  # no connection to be had: retrying would only wait again
            except psycopg.OperationalError:
                # A pooled connection the server closed (restart, idle timeout): drop
                # every such connection, not just this one, then retry once (a read).
                if attempt == 2:
                    raise
                await self._pool.check()
        raise AssertionError("unreachable")

    async def write(
        self, statement: Any, params: Mapping[str, Any], *, prepare: bool | None = None
    ) -> list[Row]:
        """One statement that writes, in a transaction of its own (autocommit: the
        statement is the transaction, one round trip), and its rows. No retry: a write
        may have committed before its connection failed; a caller that meets
        ``psycopg.OperationalError`` can answer through the sync engine instead (the pool
        has dropped the connections the server closed by then).
        ``prepare``: psycopg's (False: planned afresh each time, never prepared)."""
        import psycopg

        if not self._open:
            await self._pool.open()
            self._open = True
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(self.sql(statement), params, prepare=prepare)
                rows: list[Row] = await cursor.fetchall()
                return rows
        except psycopg.OperationalError:
            await self._pool.check()  # a restart or an idle timeout closed pooled ones
            raise

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A pooled connection in a transaction, committed when the block ends (rolled
        back on error), for a hot path that writes (the ACS). In pipeline mode: BEGIN
        goes with the first statement rather than in a round trip of its own. Rows are
        dicts; psycopg types. No retry: a caller that meets ``psycopg.OperationalError``
        on its first statement can fall back to the sync engine (the pool has dropped the
        connections the server closed by then)."""
        import psycopg

        if not self._open:
            await self._pool.open()
            self._open = True
        try:
            async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
                yield conn
        except psycopg.OperationalError:
            await self._pool.check()  # a restart or an idle timeout closed pooled ones
            raise

    def sql(self, statement: Any) -> str:
        """``statement`` compiled once for psycopg (``%(name)s`` parameters)."""
        hit = self._sql.get(id(statement))
        if hit is None:
            from sqlalchemy.dialects.postgresql.psycopg import dialect

            compiled = statement.compile(dialect=dialect())  # type: ignore[no-untyped-call]
            hit = (statement, str(compiled), dict(compiled.params))
            self._sql[id(statement)] = hit
        return hit[1]

    async def close(self) -> None:
        await self._pool.close()


class ThreadpoolReader:
    """The same interface on the sync engine, in the threadpool: SQLite (the embedded
    default) has no async driver installed, and is local anyway."""

    def __init__(self, engine: Engine) -> None:
        self.loop = asyncio.get_running_loop()
        self._engine = engine

    async def rows(
        self, statement: Select[Any] | TextClause, params: Mapping[str, Any]
    ) -> list[Row]:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self._rows, statement, params)

    def _rows(self, statement: Select[Any] | TextClause, params: Mapping[str, Any]) -> list[Row]:
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(statement, dict(params)).mappings()]

    async def close(self) -> None:
        return None


class Runtime:
    """Lazily builds the engine and session factory for one set of settings."""

    def __init__(self, settings: Settings | None = None, engine: Engine | None = None) -> None:
        self.settings = settings or get_settings()
        self._engine = engine
        self._sessionmaker: sessionmaker[Session] | None = None
        self._reader: Reader | None = None
        self.celery: Celery | None = None
        # What sign-ins read of the configuration, checked against its token per request.
        self.config_cache = ConfigCache()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self.settings.ensure_data_dir()
            self._engine = make_engine(self.settings.effective_database_url)
        return self._engine

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        if self._sessionmaker is None:
            # Every table module, so that mappers resolve their foreign keys in any process
            # (a worker imports only its task modules).
            import idp_sync.models  # noqa: F401

            self._sessionmaker = make_sessionmaker(self.engine)
        return self._sessionmaker

    def session(self, **info: Any) -> Session:
        session = self.sessionmaker()
        session.info["runtime"] = self
        session.info.update(info)
        return session

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error."""
        with self.session() as session, session.begin():
            yield session

    def reader(self) -> Reader:
        """The read pool of the running event loop, built on first use.

        Async connections belong to the loop that opened them: a runtime served again on
        another loop (a restarted server in tests) gets a new pool.
        """
        loop = asyncio.get_running_loop()
        if self._reader is None or self._reader.loop is not loop:
            if self.engine.dialect.name == "postgresql":
                self._reader = PostgresReader(self.settings.effective_database_url)
            else:
                self._reader = ThreadpoolReader(self.engine)
        return self._reader

    async def close_reader(self) -> None:
        """Close the read pool from its own loop (the app's shutdown)."""
        reader, self._reader = self._reader, None
        if reader is not None and reader.loop is asyncio.get_running_loop():
            await reader.close()

    def dispose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader.loop.is_running() and reader.loop is not _running_loop():
            # Served in another thread (tests, the demo): close it there.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(reader.close(), reader.loop).result(10)
        # A reader whose loop has ended is dropped: its connections close when collected.
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._sessionmaker = None
        self.config_cache.clear()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
