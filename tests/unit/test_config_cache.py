"""``ConfigCache``: values are kept under the token they were loaded at, and a reader
never gets a value with a token it was not kept under."""

from __future__ import annotations

import sys
import threading

from idp_sync.config_cache import ConfigCache


def test_values_are_kept_under_their_token_and_dropped_when_it_changes() -> None:
    cache = ConfigCache()
    loads: list[str] = []

    def load(value: str) -> str:
        loads.append(value)
        return value

    assert cache.get(1, "a", lambda: load("a1")) == "a1"
    assert cache.get(1, "a", lambda: load("again")) == "a1"  # kept
    assert cache.peek("a") == (1, "a1")
    assert cache.get(2, "b", lambda: load("b2")) == "b2"
    assert cache.peek("a") is None  # kept under token 1 only
    assert cache.peek("b") == (2, "b2")
    assert cache.get(None, "b", lambda: load("uncached")) == "uncached"  # no token row
    assert loads == ["a1", "b2", "uncached"]
    cache.clear()
    assert cache.peek("b") is None


def test_readers_never_pair_a_token_with_another_tokens_value() -> None:
    """Writers alternate tokens, each storing the value ``f"v{token}"``; readers check
    every pair they see."""
    cache = ConfigCache()
    wrong: list[tuple[int, object]] = []
    stop = threading.Event()

    def write() -> None:
        token = 0
        while not stop.is_set():
            token += 1
            cache.get(token, "k", lambda t=token: f"v{t}")  # type: ignore[misc]

    def read() -> None:
        while not stop.is_set():
            seen = cache.peek("k")
            if seen is not None and seen[1] != f"v{seen[0]}":
                wrong.append(seen)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        for thread in threads:
            thread.start()
        stop.wait(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)
    assert wrong == []
