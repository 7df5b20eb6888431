"""``Idempotency-Key`` on POST: a repeated key returns the first answer and acts once.

A request claims its key first, by inserting a placeholder record in its own transaction
(``INSERT ... ON CONFLICT DO NOTHING``), and fills in the answer before commit. A
concurrent request with the same key waits on that row until the first transaction
ends, then finds the committed answer (or, if the first rolled back, claims the key
itself). So two requests with one key never both act, and a new key costs one statement.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from idp_sync.auth.models import IdempotencyRecord
from idp_sync.db import utcnow
from idp_sync.errors import Conflict, Unprocessable

# The status of a claimed key whose answer is not written yet; never committed as such.
PLACEHOLDER_STATUS = 0


@dataclass(frozen=True)
class IdempotencyGuard:
    key: str  # scoped: hash of the credential + the client's key
    fingerprint: str  # hash of method, path and body

    @classmethod
    def build(
        cls, client_key: str, authorization: str, method: str, path: str, body: bytes
    ) -> IdempotencyGuard:
        scope = hashlib.sha256(authorization.encode()).hexdigest()[:16]
        fingerprint = hashlib.sha256(
            method.encode() + b" " + path.encode() + b"\n" + body
        ).hexdigest()
        return cls(key=f"{scope}:{client_key[:255]}", fingerprint=fingerprint)

    def claim(self, session: Session, ttl_hours: int) -> tuple[int, Any] | None:
        """Claim the key for this request (None), or the answer stored under it."""
        for _ in range(3):  # a conflict retries only after a record expired or was purged
            if self._insert_placeholder(session):
                return None
            stored = self.lookup(session, ttl_hours)
            if stored is not None:
                return stored
        raise Conflict("a concurrent request holds this Idempotency-Key; retry")

    def lookup(self, session: Session, ttl_hours: int) -> tuple[int, Any] | None:
        """The committed answer, if any; an expired record is deleted."""
        record = session.get(IdempotencyRecord, self.key, populate_existing=True)
        if record is None:
            return None
        if record.created_at < utcnow() - dt.timedelta(hours=ttl_hours):
            session.delete(record)
            session.flush()
            return None
        if record.fingerprint != self.fingerprint:
            raise Unprocessable(
                "this Idempotency-Key was used with a different request",
                code="idempotency_key_reused",
            )
        return record.status_code, record.body

    def store(self, session: Session, status_code: int, body: Any) -> None:
        """The answer, into this request's placeholder (committed with the change)."""
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == self.key)
            .values(status_code=status_code, body=body)
            .execution_options(synchronize_session=False)
        )

    def release(self, session: Session) -> None:
        """Give the key up: the answer is not one to repeat (not a 2xx)."""
        session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.key == self.key)
            .execution_options(synchronize_session=False)
        )

    def _insert_placeholder(self, session: Session) -> bool:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        claimed = session.execute(
            insert(IdempotencyRecord)
            .values(
                key=self.key,
                fingerprint=self.fingerprint,
                status_code=PLACEHOLDER_STATUS,
                body={},
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(IdempotencyRecord.key)
        ).first()
        return claimed is not None


def purge_expired(session: Session, ttl_hours: int) -> int:
    cutoff = utcnow() - dt.timedelta(hours=ttl_hours)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
