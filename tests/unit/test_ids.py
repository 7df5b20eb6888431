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


def test_reserved_ids_are_the_ones_new_ids_would_have_made() -> None:
    first = ids.reserve_ids("event", 3000)
    after = ids.new_id("event")
    reserved = ids.ids_from(first, 3000)
    assert reserved[0] == first and len(set(reserved)) == 3000
    assert reserved == sorted(reserved) and reserved[-1] < after
    for made in reserved[::500]:
        value = ULID.from_str(made.removeprefix("event_"))
        assert ids.encode_ulid(int(value)) == made.removeprefix("event_")


@given(st.integers(min_value=0, max_value=(1 << 128) - 5000), st.integers(0, 40))
def test_ids_from_counts_up_from_any_ulid(value: int, count: int) -> None:
    first = "dev_" + ids.encode_ulid(value)
    assert ids.ids_from(first, count) == ["dev_" + ids.encode_ulid(value + i) for i in range(count)]
