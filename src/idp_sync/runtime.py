"""The process's runtime: settings, database engine, sessions and the Celery app.

Built by factories (``create_app``, ``create_celery_app``, the CLI), never at import time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from idp_sync.config import Settings, get_settings
from idp_sync.db import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from celery import Celery


class Runtime:
    """Lazily builds the engine and session factory for one set of settings."""

    def __init__(self, settings: Settings | None = None, engine: Engine | None = None) -> None:
        self.settings = settings or get_settings()
        self._engine = engine
        self._sessionmaker: sessionmaker[Session] | None = None
        self.celery: Celery | None = None

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

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._sessionmaker = None
