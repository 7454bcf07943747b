"""Backoff (full jitter) and the WCU rate limiter, on a fake clock: no real sleeping."""

from __future__ import annotations

import random
from itertools import pairwise
from statistics import fmean

import pytest

from loader.backoff import DECREASE, FAST_INCREASE, INCREASE, THROTTLED_SHARE, Backoff, RateLimiter


class FakeClock:
    """Time moves only when someone sleeps (or the test says so); every sleep is recorded."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


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


# --- RateLimiter: fixed --max-wcu ---------------------------------------------------------


async def test_a_fixed_rate_paces_1000_wcu_at_100_per_second_to_about_ten_seconds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    for _ in range(100):
        await limiter.acquire(10)
    # A second of burst is allowed at the start, so 1000 WCU take 9 s, not 10.
    assert 9.0 - 1e-9 <= clock.t <= 10.0 + 1e-9


async def test_a_fixed_rate_allows_one_second_of_burst_and_no_more() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    clock.t = 3600.0  # an idle hour does not save up an hour of capacity
    for _ in range(10):
        await limiter.acquire(10)
    assert clock.sleeps == []
    await limiter.acquire(50)
    assert clock.sleeps == [pytest.approx(0.5)]


async def test_an_item_bigger_than_the_bucket_still_goes_out_and_its_debt_is_waited_off() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    await limiter.acquire(250)
    assert clock.sleeps == [pytest.approx(1.5)]
    await limiter.acquire(10)  # the debt is paid; the bucket refills from here
    assert clock.sleeps == [pytest.approx(1.5), pytest.approx(0.1)]


async def test_settle_refunds_the_tokens_dynamodb_did_not_consume() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    await limiter.acquire(100)
    limiter.settle(taken=100, consumed=20, throttled=False)
    await limiter.acquire(80)  # the 80 refunded tokens: no wait
    assert clock.sleeps == []
    await limiter.acquire(10)
    assert clock.sleeps == [pytest.approx(0.1)]


async def test_settle_charges_what_dynamodb_consumed_beyond_the_estimate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    await limiter.acquire(10)
    limiter.settle(taken=10, consumed=60, throttled=False)
    await limiter.acquire(50)  # 100 - 60 - 50 = -10
    assert clock.sleeps == [pytest.approx(0.1)]


async def test_with_max_wcu_the_rate_never_adapts() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_wcu=100, adaptive=True)
    for second in range(1, 6):
        clock.t = float(second)
        limiter.settle(taken=10, consumed=10, throttled=second % 2 == 0)
    assert limiter.rate == 100


# --- RateLimiter: adaptive ----------------------------------------------------------------


def second(
    limiter: RateLimiter, clock: FakeClock, *, accepted: float, refused: float = 0.0
) -> None:
    """One second of responses, one every 0.1 s: DynamoDB accepts `accepted` WCU in it and
    turns `refused` away; the limiter judges the second at its end."""
    start = round(clock.t * 10)
    for tick in range(1, 11):
        clock.t = (start + tick) / 10
        limiter.settle(
            taken=(accepted + refused) / 10,
            consumed=accepted / 10,
            throttled=refused > 0,
            refused=refused / 10,
        )


def adaptive(clock: FakeClock) -> RateLimiter:
    """An adaptive limiter whose first second starts now (it counts from a first answer)."""
    limiter = RateLimiter(clock, max_wcu=None, adaptive=True)
    limiter.settle(taken=0, consumed=0, throttled=False)
    return limiter


async def test_adaptive_starts_unlimited() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    for _ in range(1000):
        await limiter.acquire(1000)
        limiter.settle(taken=1000, consumed=1000, throttled=False)
    assert limiter.rate is None
    assert clock.sleeps == []


@pytest.mark.parametrize("accepted", [100.0, 1000.0, 5000.0])
async def test_a_throttled_second_cuts_the_rate_to_90_percent_of_what_was_accepted(
    accepted: float,
) -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=accepted * 3)
    second(limiter, clock, accepted=accepted, refused=accepted)  # half refused
    assert limiter.rate == pytest.approx(DECREASE * accepted)


async def test_a_trace_of_refusals_is_not_throttling_and_the_rate_keeps_rising() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=1000, refused=1000)
    cut = limiter.rate
    assert cut == pytest.approx(900)
    second(limiter, clock, accepted=900, refused=900 * THROTTLED_SHARE / 2)
    assert limiter.rate == pytest.approx(cut * (1 + INCREASE))


async def test_after_a_cut_acquire_waits_at_the_new_rate() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=200, refused=200)
    rate = limiter.rate
    assert rate is not None
    await limiter.acquire(rate / 2)  # no burst saved up: the cut empties the bucket
    await limiter.acquire(rate)
    assert clock.sleeps == [pytest.approx(0.5), pytest.approx(1.0)]


async def test_the_rate_is_judged_once_a_second_not_per_response() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=1000, refused=1000)
    first_cut = limiter.rate
    assert first_cut is not None
    for t in (1.2, 1.5, 1.7, 1.9):  # more responses inside the next second
        clock.t = t
        limiter.settle(taken=100, consumed=100, throttled=False, refused=0)
        assert limiter.rate == first_cut
    clock.t = 2.0
    limiter.settle(taken=100, consumed=100, throttled=False, refused=0)
    assert limiter.rate == pytest.approx(first_cut * (1 + INCREASE))


async def test_refusals_that_do_not_ease_when_the_rate_is_cut_stop_cutting_it() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=4000)
    for _ in range(60):  # a flaky network: 20% refused whatever the rate
        rate = limiter.rate or 4000.0
        second(limiter, clock, accepted=rate * 0.8, refused=rate * 0.2)
    assert limiter.rate is not None
    assert limiter.rate > 4000 / 2


async def test_a_real_drop_in_capacity_is_followed_all_the_way_down() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=4000)
    for _ in range(30):  # the table now takes 100 WCU/s, whatever is sent
        rate = limiter.rate or 4000.0
        second(limiter, clock, accepted=min(rate, 100), refused=max(rate - 100, 0))
    assert limiter.rate is not None
    assert limiter.rate < 150


async def test_against_a_fixed_capacity_the_rate_settles_just_under_it() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    accepted_per_second = []
    for _ in range(60):  # a table that takes 1,000 WCU/s
        rate = limiter.rate or 5000.0
        accepted_per_second.append(min(rate, 1000))
        second(limiter, clock, accepted=min(rate, 1000), refused=max(rate - 1000, 0))
    settled = accepted_per_second[10:]
    assert sum(settled) / len(settled) >= 900
    over = sum(1 for a in settled if a >= 1000)
    assert over / len(settled) <= 0.5


async def test_a_throttle_before_anything_was_accepted_still_lets_the_job_go_on() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=0, refused=100)
    assert limiter.rate is not None
    assert limiter.rate >= 25.0
    await limiter.acquire(10)
    assert sum(clock.sleeps) <= 1.0


async def test_quiet_seconds_probe_the_rate_up_gently_and_at_least_10_wcu() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=1000, refused=1000)
    cut = limiter.rate
    assert cut is not None
    second(limiter, clock, accepted=cut)
    second(limiter, clock, accepted=cut)
    assert limiter.rate == pytest.approx(cut * (1 + INCREASE) ** 2)
    low = adaptive(clock)
    second(low, clock, accepted=100, refused=100)
    assert low.rate == pytest.approx(90)
    second(low, clock, accepted=90)
    assert low.rate == pytest.approx(100)  # 3% of 90 is under 10


async def test_far_below_the_best_second_the_rate_climbs_back_fast() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=1000)
    second(limiter, clock, accepted=100, refused=900)  # one bad second: cut to 90
    assert limiter.rate == pytest.approx(90)
    second(limiter, clock, accepted=90)
    assert limiter.rate == pytest.approx(90 * (1 + FAST_INCREASE))


async def test_probing_up_raises_what_acquire_allows() -> None:
    clock = FakeClock()
    limiter = adaptive(clock)
    second(limiter, clock, accepted=100, refused=100)
    for _ in range(26):
        second(limiter, clock, accepted=limiter.rate or 0.0)
    assert limiter.rate is not None
    assert limiter.rate > 200
    rate = limiter.rate
    start = clock.t
    for _ in range(300):
        await limiter.acquire(rate / 100)  # three seconds' worth at the raised rate
    assert 2.0 - 1e-9 <= clock.t - start <= 3.0 + 1e-9
