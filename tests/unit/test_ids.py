"""Prefixed ids: ULID text form, monotonic order, bulk allocation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from idp_sync import ids


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_encoding_matches_the_ulid_library(value: int) -> None:
    assert ids.encode_ulid(value) == str(ULID.from_int(value))


def test_ids_are_strictly_increasing_across_single_and_bulk_allocation() -> None:
    made = [ids.new_id("event")]
    made += ids.new_ids("event", 5000)
    made.append(ids.new_id("event"))
    made += ids.new_ids("event", 3)
    assert all(i.startswith("event_") and len(i) == len("event_") + 26 for i in made)
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_ids_carry_the_current_time() -> None:
    import time

    before = time.time_ns() // 1_000_000
    value = ULID.from_str(ids.new_id("job").removeprefix("job_"))
    assert before <= int(value.milliseconds) <= time.time_ns() // 1_000_000
