"""Micro-benchmark for idp_sync.rbac.resolver.resolve (DESIGN §3).

Usage: python bench/bench_resolver.py [--quick]

Shape: 20 roles (2 being deleted), 50 directory groups, 10 group-to-role mappings, a
user in 10 groups of which 4 are mapped. Measures resolutions/s in single-role and
multiple-roles mode (best of 5 repeats) and, in the same run, a baseline loop calling a
trivial pure-Python function (sorted() of a shuffled 20-element tuple) so numbers can be
compared across machines. Reports only; always exits 0.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from idp_sync.rbac.resolver import (
    GroupMapping,
    IdpInput,
    MembershipInput,
    RoleState,
    resolve,
)

TARGET = 100_000
REPEATS = 5


def build(multiple: bool) -> tuple[RoleState, MembershipInput]:
    rng = random.Random(42)
    roles = [f"role_{i:02d}" for i in range(20)]
    order = roles[:]
    rng.shuffle(order)
    deleting = {roles[3], roles[7]}
    state = RoleState(
        priority_order=tuple(order),
        assignable=frozenset(roles) - deleting,
        default_role=roles[0],
        org_default_role=roles[1],
        multiple_roles=multiple,
    )
    groups = [f"directory_group_{i:02d}" for i in range(50)]
    # 10 mappings over groups 0..9; one points at a role being deleted.
    mapped_roles = [roles[i] for i in (5, 9, 3, 12, 5, 17, 2, 14, 8, 11)]
    mappings = tuple(
        GroupMapping(f"grm_{i:02d}", groups[i], role) for i, role in enumerate(mapped_roles)
    )
    # User in 10 groups: 4 mapped (0, 2, 3, 5), 6 unmapped.
    user_groups = frozenset(groups[i] for i in (0, 2, 3, 5, 20, 25, 30, 35, 40, 45))
    member = MembershipInput(
        api_roles=(roles[4], roles[6]),
        directory=IdpInput("directory_01", user_groups, mappings),
    )
    return state, member


def best_rate(call: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N (5,000)")
    args = parser.parse_args()
    n = 5_000 if args.quick else 50_000

    shuffled = [f"role_{i:02d}" for i in range(20)]
    random.Random(7).shuffle(shuffled)
    baseline_input = tuple(shuffled)
    baseline_state = object()

    def baseline(items: tuple[str, ...], _state: object) -> list[str]:
        return sorted(items)

    baseline_rate = best_rate(partial(baseline, baseline_input, baseline_state), n)
    print(f"baseline sorted(20): {baseline_rate:,.0f} calls/s (N={n:,}, best of {REPEATS})")

    ok = True
    for label, multiple in (("single-role", False), ("multiple-roles", True)):
        state, member = build(multiple)
        result = resolve(state, member)
        rate = best_rate(partial(resolve, state, member), n)
        ok = ok and rate >= TARGET
        print(
            f"resolver {label}: {rate:,.0f} resolutions/s "
            f"(ratio to baseline sorted(20): {rate / baseline_rate:.2f}) -> {result.roles}"
        )
    print(f"target >= {TARGET:,}/s: {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
