"""API keys: random, shown once, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from idp_sync.auth.models import ApiKey
from idp_sync.db import utcnow
from idp_sync.ids import new_id

if TYPE_CHECKING:
    from idp_sync.runtime import Reader

KEY_PREFIX = "sk_idp_"
BOOTSTRAP_ID = "key_bootstrap"


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """A new key; the raw value is returned once and never stored."""
    raw = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits
    key = ApiKey(
        id=new_id("api_key"),
        name=name,
        key_hash=hash_key(raw),
        prefix=raw[:12],
        created_at=utcnow(),
    )
    session.add(key)
    return key, raw


class ApiKeyVerifier:
    """Checks bearer keys against the bootstrap key and the table, caching positive answers.

    Only hashes are kept in memory; a revoked key stops working within the cache TTL.
    """

    def __init__(self, bootstrap_key: str | None, cache_seconds: float) -> None:
        self._bootstrap_hash = hash_key(bootstrap_key) if bootstrap_key else None
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def cached(self, raw: str) -> str | None:
        digest = hash_key(raw)
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def verify(self, session: Session, raw: str) -> str | None:
        """The key's id if ``raw`` is a valid key, else None."""
        digest = hash_key(raw)
        key_id = self._bootstrap(digest)
        if key_id is None:
            row = session.scalar(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )
            if row is not None and hmac.compare_digest(row.key_hash, digest):
                key_id = row.id
        return self._remember(digest, key_id)

    async def verify_async(self, reader: Reader, raw: str) -> str | None:
        """``verify`` for ``async def`` routes: the same lookup on the runtime's reader."""
        digest = hash_key(raw)
        key_id = self._bootstrap(digest)
        if key_id is None:
            rows = await reader.rows(_LIVE_KEY, {"digest": digest})
            if rows and hmac.compare_digest(rows[0]["key_hash"], digest):
                key_id = str(rows[0]["id"])
        return self._remember(digest, key_id)

    def _bootstrap(self, digest: str) -> str | None:
        if self._bootstrap_hash is not None and hmac.compare_digest(digest, self._bootstrap_hash):
            return BOOTSTRAP_ID
        return None

    def _remember(self, digest: str, key_id: str | None) -> str | None:
        if key_id is not None:
            with self._lock:
                self._cache[digest] = (key_id, time.monotonic() + self._ttl)
        return key_id


_KEYS = ApiKey.__table__
_LIVE_KEY = select(_KEYS.c.id, _KEYS.c.key_hash).where(
    _KEYS.c.key_hash == bindparam("digest"), _KEYS.c.revoked_at.is_(None)
)
