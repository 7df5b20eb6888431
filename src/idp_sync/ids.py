"""Prefixed identifiers sortable by creation time (``org_01J...``), as WorkOS uses.

The body is a ULID (48-bit millisecond timestamp + 80 random bits, Crockford base32).
Within one process, ids are strictly increasing even inside one millisecond: the random
part is incremented instead of redrawn, as the ULID spec's monotonic mode does.
"""

from __future__ import annotations

import os
import threading
import time

from ulid import ULID

PREFIXES = {
    "api_key": "key",
    "authn_request": "saml_req",
    "connection": "conn",
    "delivery": "wd",
    "directory": "directory",
    "directory_event": "dev",
    "directory_group": "directory_group",
    "directory_user": "directory_user",
    "event": "event",
    "group_role_mapping": "grm",
    "idempotency": "idem",
    "job": "job",
    "membership": "om",
    "organization": "org",
    "organization_domain": "org_domain",
    "outbox": "msg",
    "permission": "perm",
    "redirect_uri": "ruri",
    "role": "role",
    "saml_idp_signing_cert": "cert",
    "sso_login": "sso_login",
    "sso_profile": "prof",
    "user": "user",
    "webhook_endpoint": "we",
}

_lock = threading.Lock()
_last: tuple[int, int] = (0, 0)  # (milliseconds, random part) of the last ULID made here
_RANDOM_MAX = (1 << 80) - 1


def _next_ulid() -> ULID:
    global _last
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        last_ms, last_rand = _last
        if now_ms <= last_ms:
            now_ms = last_ms
            rand = last_rand + 1
            if rand > _RANDOM_MAX:  # 2^80 ids in one ms: move to the next ms
                now_ms, rand = now_ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        else:
            # Keep headroom so increments within this millisecond never overflow.
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last = (now_ms, rand)
    return ULID.from_bytes(now_ms.to_bytes(6, "big") + rand.to_bytes(10, "big"))


def new_id(kind: str) -> str:
    """A new id for an object of ``kind`` (a key of PREFIXES), e.g. ``new_id("role")``."""
    return f"{PREFIXES[kind]}_{_next_ulid()}"
