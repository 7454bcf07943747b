"""Backoff: full jitter, capped, seeded."""

from __future__ import annotations

import random
from itertools import pairwise
from statistics import fmean

import pytest

from loader.backoff import Backoff

# --- Backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "cap"), [(0.05, 5.0), (0.1, 20.0), (1.0, 1.0)])
def test_each_delay_is_within_zero_and_the_capped_exponential_ceiling(
    base: float, cap: float
) -> None:
    backoff = Backoff(base=base, cap=cap, rng=random.Random(1))
    for attempt in range(1, 40):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        for _ in range(200):
            assert 0.0 <= backoff.delay(attempt) <= ceiling


def test_delays_use_the_whole_range_full_jitter() -> None:
    backoff = Backoff(base=1.0, cap=100.0, rng=random.Random(3))
    delays = [backoff.delay(4) for _ in range(1000)]  # ceiling 8
    assert min(delays) < 0.8
    assert max(delays) > 7.2


def test_the_same_seed_gives_the_same_delays() -> None:
    first = Backoff(rng=random.Random(42))
    second = Backoff(rng=random.Random(42))
    attempts = [1, 2, 3, 5, 8, 13, 100] * 10
    assert [first.delay(a) for a in attempts] == [second.delay(a) for a in attempts]
    other = Backoff(rng=random.Random(43))
    assert [other.delay(a) for a in attempts] != [
        Backoff(rng=random.Random(42)).delay(a) for a in attempts
    ]


@pytest.mark.parametrize("attempt", [64, 100, 1000, 10**6])
def test_a_huge_attempt_number_is_capped_without_overflow(attempt: int) -> None:
    backoff = Backoff(base=0.05, cap=5.0, rng=random.Random(0))
    delays = [backoff.delay(attempt) for _ in range(200)]
    assert all(0.0 <= d <= 5.0 for d in delays)
    assert max(delays) > 4.0  # capped, not collapsed to zero


def test_the_mean_delay_doubles_per_attempt_until_the_cap() -> None:
    backoff = Backoff(base=0.05, cap=5.0, rng=random.Random(7))
    means = [fmean(backoff.delay(a) for _ in range(3000)) for a in range(1, 12)]
    for attempt, mean in enumerate(means, start=1):
        expected = min(5.0, 0.05 * 2 ** (attempt - 1)) / 2
        assert mean == pytest.approx(expected, rel=0.1), f"attempt {attempt}"
    # Grows until the ceiling passes the cap (attempt 8: 6.4 > 5), then stays.
    assert all(a < b for a, b in pairwise(means[:8]))
