"""Prefixed identifiers sortable by creation time (``org_01J...``), as WorkOS uses.

The body is a ULID (48-bit millisecond timestamp + 80 random bits, Crockford base32).
Within one process, ids are strictly increasing even inside one millisecond: the random
part is incremented instead of redrawn, as the ULID spec's monotonic mode does.
"""

from __future__ import annotations

import os
import threading
import time

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

# Crockford base32, two characters (10 bits) at a time: a ULID's 128 bits, left-padded to
# 130, are 13 pairs. Formatting ids is on the bulk jobs' hot path (an event id per row).
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_SHIFTS = tuple(range(120, -1, -10))

_lock = threading.Lock()
_last: tuple[int, int] = (0, 0)  # (milliseconds, random part) of the last ULID made here
_RANDOM_MAX = (1 << 80) - 1


def _next_ulids(count: int) -> list[int]:
    """``count`` consecutive monotonic ULIDs as 128-bit integers."""
    global _last
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        last_ms, last_rand = _last
        if now_ms <= last_ms:
            now_ms, rand = last_ms, last_rand + 1
        else:
            # Keep headroom so increments within this millisecond never overflow.
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        if rand + count - 1 > _RANDOM_MAX:  # 2^79 ids in one ms: move to the next ms
            now_ms, rand = now_ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        _last = (now_ms, rand + count - 1)
    base = (now_ms << 80) | rand
    return [base + i for i in range(count)]


def encode_ulid(value: int) -> str:
    """The 26-character Crockford base32 form of a 128-bit ULID."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_id(kind: str) -> str:
    """A new id for an object of ``kind`` (a key of PREFIXES), e.g. ``new_id("role")``."""
    return f"{PREFIXES[kind]}_{encode_ulid(_next_ulids(1)[0])}"


def reserve_ids(kind: str, count: int) -> str:
    """The first of ``count`` new ids of ``kind``, reserved as ``new_ids`` would make them
    but not written out: ``ids_from`` gives them all later, wherever they are needed (a
    large PATCH's events are made by the sequencer, in the order of their reservation)."""
    return f"{PREFIXES[kind]}_{encode_ulid(_next_ulids(max(count, 1))[0])}"


def ids_from(first: str, count: int) -> list[str]:
    """The ``count`` ids ``reserve_ids`` reserved from ``first``."""
    prefix, _, body = first.rpartition("_")
    value = 0
    for char in body:
        value = (value << 5) | _DECODE[char]
    return [f"{prefix}_{encode_ulid(value + i)}" for i in range(count)]


_DECODE = {c: i for i, c in enumerate(_ALPHABET)}


def new_ids(kind: str, count: int) -> list[str]:
    """``count`` new ids of ``kind``, increasing, made under one lock (bulk writes)."""
    prefix = PREFIXES[kind] + "_"
    return [prefix + encode_ulid(value) for value in _next_ulids(count)]
