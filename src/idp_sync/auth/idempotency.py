"""``Idempotency-Key`` on POST: a repeated key returns the first answer and acts once.

The record is written in the same transaction as the change, so two concurrent requests
with one key cannot both act: the second's insert fails on the primary key, it rolls
back, and it answers with the stored response instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from idp_sync.auth.models import IdempotencyRecord
from idp_sync.db import utcnow
from idp_sync.errors import Unprocessable


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

    def lookup(self, session: Session, ttl_hours: int) -> tuple[int, Any] | None:
        """The stored answer, if any. On PostgreSQL, requests with one key queue here (a
        transaction-scoped advisory lock), so a duplicate waits for the first to commit and
        then finds its answer; SQLite transactions are serialised already."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(func.hashtext(self.key))))
        record = session.get(IdempotencyRecord, self.key)
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
        session.add(
            IdempotencyRecord(
                key=self.key,
                fingerprint=self.fingerprint,
                status_code=status_code,
                body=body,
                created_at=utcnow(),
            )
        )


def purge_expired(session: Session, ttl_hours: int) -> int:
    cutoff = utcnow() - dt.timedelta(hours=ttl_hours)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
