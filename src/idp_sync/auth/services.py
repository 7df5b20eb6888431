"""API keys: random, shown once, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp_sync.auth.models import ApiKey
from idp_sync.db import utcnow
from idp_sync.ids import new_id

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
        key_id: str | None = None
        if self._bootstrap_hash is not None and hmac.compare_digest(digest, self._bootstrap_hash):
            key_id = BOOTSTRAP_ID
        else:
            row = session.scalar(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )
            if row is not None and hmac.compare_digest(row.key_hash, digest):
                key_id = row.id
        if key_id is not None:
            with self._lock:
                self._cache[digest] = (key_id, time.monotonic() + self._ttl)
        return key_id
