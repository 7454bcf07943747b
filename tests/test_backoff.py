"""Backoff (full jitter) and the WCU rate limiter, on a fake clock: no real sleeping."""

from __future__ import annotations

import heapq
import random
from itertools import pairwise
from statistics import fmean
from typing import Any

import pytest

from loader.backoff import DECREASE, Backoff, RateLimiter
from tests.fakes import FakeClock

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
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    for _ in range(100):
        await limiter.acquire(10)
    # A second of burst is allowed at the start, so 1000 WCU take 9 s, not 10.
    assert 9.0 - 1e-9 <= clock.t <= 10.0 + 1e-9


async def test_a_fixed_rate_allows_one_second_of_burst_and_no_more() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    clock.t = 3600.0  # an idle hour does not save up an hour of capacity
    for _ in range(10):
        await limiter.acquire(10)
    assert clock.sleeps == []
    await limiter.acquire(50)
    assert clock.sleeps == [pytest.approx(0.5)]


async def test_an_item_bigger_than_the_bucket_still_goes_out_and_its_debt_is_waited_off() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    await limiter.acquire(250)
    assert clock.sleeps == [pytest.approx(1.5)]
    await limiter.acquire(10)  # the debt is paid; the bucket refills from here
    assert clock.sleeps == [pytest.approx(1.5), pytest.approx(0.1)]


async def test_settle_refunds_the_tokens_dynamodb_did_not_consume() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    await limiter.acquire(100)
    limiter.settle(taken=100, consumed=20, throttled=False)
    await limiter.acquire(80)  # the 80 refunded tokens: no wait
    assert clock.sleeps == []
    await limiter.acquire(10)
    assert clock.sleeps == [pytest.approx(0.1)]


async def test_settle_charges_what_dynamodb_consumed_beyond_the_estimate() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    await limiter.acquire(10)
    limiter.settle(taken=10, consumed=60, throttled=False)
    await limiter.acquire(50)  # 100 - 60 - 50 = -10
    assert clock.sleeps == [pytest.approx(0.1)]


async def test_with_max_wcu_the_rate_never_adapts() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock, max_wcu=100, adaptive=True)
    for second in range(1, 6):
        clock.t = float(second)
        limiter.settle(taken=10, consumed=10, throttled=second % 2 == 0)
    assert limiter.rate == 100


async def test_wcu_dynamodb_refused_stay_spent_so_retries_are_paced_too() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock, max_wcu=100, adaptive=False)
    await limiter.acquire(100)
    limiter.settle(taken=100, consumed=40, throttled=True, refused=60)
    await limiter.acquire(60)  # resending the 60 refused waits for new tokens
    assert clock.sleeps == [pytest.approx(0.6)]


# --- RateLimiter: adaptive ----------------------------------------------------------------


class SimTable:
    """A table that admits `capacity` WCU/s from a bucket holding one second of it (as
    the fault proxy does), and refuses some items of some requests by chance (`p_noise`
    of requests lose a random 1-25 of their items): 25-item requests of 1 WCU, from
    `workers` senders with `latency_s` round trips, paced by the limiter alone. With
    `p_stall`, the sender stalls now and then for 50-300 ms (a busy machine: the event
    loop, the table, the network) and round trips vary, as on a loaded CI machine."""

    def __init__(
        self,
        capacity: float | None,
        *,
        p_noise: float = 0.0,
        workers: int = 32,
        latency_s: float = 0.02,
        p_stall: float = 0.0,
        seed: int = 1,
    ) -> None:
        self.capacity = capacity
        self.p_noise = p_noise
        self.p_stall = p_stall
        self.step = latency_s / workers
        self.rng = random.Random(seed)
        self.tokens = capacity or 0.0
        self.stamp = 0.0
        self.admitted: list[float] = []  # WCU per second
        self.requests: list[int] = []  # per second
        self.throttled: list[int] = []  # requests with items refused for capacity, per second

    async def run(self, limiter: RateLimiter, clock: FakeClock, seconds: float) -> None:
        end = clock.t + seconds
        while clock.t < end:
            if self.p_stall and self.rng.random() < self.p_stall:
                clock.t += self.rng.uniform(0.05, 0.3)
            await limiter.acquire(25)
            sent_at = clock.t
            clock.t += self.step * (self.rng.uniform(0.2, 1.8) if self.p_stall else 1.0)
            accepted, by_capacity = self.offer(clock.t, 25)
            limiter.settle(
                taken=25,
                consumed=accepted,
                throttled=accepted < 25,
                refused=25 - accepted,
                sent_at=sent_at,
            )
            second = int(clock.t)
            for series in (self.admitted, self.requests, self.throttled):
                series.extend([0] * (second + 1 - len(series)))
            self.admitted[second] += accepted
            self.requests[second] += 1
            self.throttled[second] += by_capacity

    def offer(self, now: float, items: int) -> tuple[int, bool]:
        noise = self.rng.randint(1, items) if self.rng.random() < self.p_noise else 0
        if self.capacity is None:
            return items - noise, False
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.capacity)
        self.stamp = now
        admitted = min(items - noise, int(self.tokens))
        self.tokens -= admitted
        return admitted, admitted < items - noise

    def after(self, skip_s: int) -> tuple[float, float]:
        """Mean WCU/s admitted and the share of requests throttled, from `skip_s` on."""
        requests = sum(self.requests[skip_s:-1])
        return fmean(self.admitted[skip_s:-1]), sum(self.throttled[skip_s:-1]) / requests


class _Sleep:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __await__(self) -> Any:
        yield self


class EventClock:
    """Virtual time for many coroutines: a sleep yields to `RetryingSim`'s scheduler."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> Any:
        return _Sleep(max(0.0, seconds))


class RetryingSim:
    """`workers` senders with round trips in flight at once, retrying what the table
    refused as the loader does: due retries first in a batch, topped up with fresh
    writes, no fresh ones while more than `retry_limit` wait, full-jitter backoff by
    attempts, `again` reported for writes refused before. The table admits the first
    items of each request from a bucket holding one second of `capacity`."""

    def __init__(
        self,
        capacity: float,
        *,
        workers: int = 32,
        latency_s: float = 0.02,
        item_wcu: int = 1,
        retry_limit: int = 800,
        max_retries: int = 10,
        seed: int = 1,
    ) -> None:
        self.capacity, self.workers, self.latency_s = capacity, workers, latency_s
        self.item_wcu, self.retry_limit, self.max_retries = item_wcu, retry_limit, max_retries
        self.rng = random.Random(seed)
        self.backoff = Backoff(rng=random.Random(seed + 1))
        self.clock = EventClock()
        self.limiter = RateLimiter(self.clock, max_wcu=None, adaptive=True)
        self.tokens, self.stamp = capacity, 0.0
        self.fresh = 0
        self.retries: list[tuple[float, int]] = []  # (not before, item)
        self.attempts: dict[int, int] = {}
        self.gave_up = 0
        self.log: list[tuple[float, float, bool]] = []  # (when, WCU admitted, throttled)

    def _take(self) -> list[int]:
        batch: list[int] = []
        while self.retries and self.retries[0][0] <= self.clock.t and len(batch) < 25:
            batch.append(heapq.heappop(self.retries)[1])
        if len(self.retries) <= self.retry_limit:
            while len(batch) < 25:
                batch.append(self.fresh)
                self.fresh += 1
        return batch

    def _offer(self, batch: list[int]) -> list[int]:
        now = self.clock.t
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.capacity)
        self.stamp = now
        admitted = min(len(batch), int(self.tokens // self.item_wcu))
        self.tokens -= admitted * self.item_wcu
        return batch[admitted:]

    async def _worker(self, seconds: float) -> None:
        wcu = self.item_wcu
        while self.clock.t < seconds:
            batch = self._take()
            if not batch:
                await self.clock.sleep(0.01)
                continue
            await self.limiter.acquire(len(batch) * wcu)
            sent_at = self.clock.t
            await self.clock.sleep(self.latency_s * self.rng.uniform(0.7, 1.3))
            left = self._offer(batch)
            again = sum(wcu for item in left if item in self.attempts)
            self.limiter.settle(
                taken=len(batch) * wcu,
                consumed=(len(batch) - len(left)) * wcu,
                throttled=bool(left),
                refused=len(left) * wcu,
                sent_at=sent_at,
                again=float(again),
            )
            self.log.append((self.clock.t, (len(batch) - len(left)) * wcu, bool(left)))
            for item in set(batch) - set(left):
                self.attempts.pop(item, None)
            for item in left:
                failed = self.attempts.get(item, 0) + 1
                if failed > self.max_retries:
                    self.attempts.pop(item, None)
                    self.gave_up += 1
                    continue
                self.attempts[item] = failed
                delay = self.backoff.delay(failed)
                heapq.heappush(self.retries, (self.clock.t + delay, item))

    def run(self, seconds: float) -> None:
        queue = [(i * self.latency_s / self.workers, i) for i in range(self.workers)]
        coroutines = {i: self._worker(seconds) for i in range(self.workers)}
        serial = self.workers
        while queue:
            t, i = heapq.heappop(queue)
            self.clock.t = max(self.clock.t, t)
            try:
                pause = coroutines[i].send(None)
            except StopIteration:
                continue
            serial += 1
            coroutines[serial] = coroutines.pop(i)
            heapq.heappush(queue, (self.clock.t + pause.seconds, serial))

    def after(self, skip_s: float) -> tuple[float, float]:
        """Mean WCU/s admitted and the share of requests throttled, from `skip_s` on."""
        settled = [(t, wcu, throttled) for t, wcu, throttled in self.log if t >= skip_s]
        span = settled[-1][0] - skip_s
        return sum(w for _, w, _ in settled) / span, fmean(th for _, _, th in settled)


@pytest.mark.parametrize(
    ("capacity", "item_wcu", "latency_s", "most_throttled"),
    [
        (1000.0, 1, 0.02, 0.10),  # a client ~30x faster than the table
        (1000.0, 1, 0.3, 0.10),
        (1000.0, 4, 0.1, 0.15),  # fewer requests a second: a cut comes later
        (100.0, 1, 0.1, 0.25),  # 4 requests a second; measured 16%
    ],
)
def test_a_fast_client_whose_requests_fill_with_retries_is_still_cut_to_the_capacity(
    capacity: float, item_wcu: int, latency_s: float, most_throttled: float
) -> None:
    # Past ~800 writes waiting for a retry, requests are retries alone: the table's
    # refusal of them says it is over capacity (the limiter once counted them for
    # their partition only, never cut, and had 64-85% of requests throttled).
    sim = RetryingSim(capacity, item_wcu=item_wcu, latency_s=latency_s)
    sim.run(30)
    used, throttled = sim.after(skip_s=10)
    assert used >= 0.9 * capacity
    assert throttled <= most_throttled
    assert sim.gave_up == 0


def test_a_cut_after_the_table_s_stored_burst_lands_near_its_capacity() -> None:
    # Sent 1,500 WCU/s, the table takes all while its one-second burst lasts (2 s),
    # then 1,000: the first cut counts only what it took since it first refused.
    # (Counting the window that held the burst cut to ~1,140, still over capacity.)
    sim = RetryingSim(1000.0, workers=3, latency_s=0.05)
    sim.run(2.5)
    assert sim.limiter.rate is not None
    assert 850 <= sim.limiter.rate <= 1000


def adaptive(clock: FakeClock) -> RateLimiter:
    return RateLimiter(clock, max_wcu=None, adaptive=True)


async def test_adaptive_starts_unlimited() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    for _ in range(1000):
        await limiter.acquire(1000)
        clock.t += 0.001
        limiter.settle(taken=1000, consumed=1000, throttled=False)
    assert limiter.rate is None
    assert clock.sleeps == []


@pytest.mark.parametrize("capacity", [1000.0, 3000.0, 20_000.0])
async def test_against_a_table_capacity_it_uses_90_percent_with_few_requests_throttled(
    capacity: float,
) -> None:
    clock = FakeClock(start=0.0)
    table = SimTable(capacity)
    await table.run(adaptive(clock), clock, 60)
    used, throttled = table.after(skip_s=5)
    assert used >= 0.9 * capacity
    assert throttled <= 0.10  # issue 3's bound, measured as the fault proxy counts it


@pytest.mark.parametrize("seed", range(12))
async def test_on_a_busy_machine_it_still_uses_90_percent_with_few_requests_throttled(
    seed: int,
) -> None:
    # Stalls of the sender let a burst out after them, and leave windows that counted
    # too little: the limiter that learnt which refusals were noise took capacity for
    # noise in 13 of 40 such runs (up to 91% throttled), and cut to a stalled window's
    # count in others (down to 34% of the capacity used).
    clock = FakeClock(start=0.0)
    table = SimTable(1000, workers=16, latency_s=0.015, p_stall=0.005, seed=seed)
    await table.run(adaptive(clock), clock, 16)
    used, throttled = table.after(skip_s=5)
    assert used >= 900
    assert throttled <= 0.10


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_sporadic_refusals_that_are_not_capacity_do_not_collapse_the_rate(
    seed: int,
) -> None:
    clean, noisy = FakeClock(start=0.0), FakeClock(start=0.0)
    unlimited = SimTable(None, seed=seed)
    await unlimited.run(adaptive(clean), clean, 20)
    flaky = SimTable(None, p_noise=0.05, seed=seed)  # ~2.6% of items refused by chance
    await flaky.run(adaptive(noisy), noisy, 20)
    assert fmean(flaky.admitted[3:-1]) >= 0.75 * fmean(unlimited.admitted[3:-1])


async def test_a_real_drop_in_capacity_is_followed_all_the_way_down() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    table = SimTable(4000)
    await table.run(limiter, clock, 10)
    table.capacity = 100
    await table.run(limiter, clock, 40)
    assert limiter.rate is not None
    assert limiter.rate < 150
    used, _ = table.after(skip_s=30)
    assert used >= 90


async def test_a_throttled_window_cuts_the_rate_to_90_percent_of_what_was_accepted() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    for _ in range(80):  # 2,000 WCU/s accepted, 400 refused
        clock.t += 0.5 / 40
        limiter.settle(taken=30, consumed=25, throttled=True, refused=5)
        if limiter.rate is not None:
            break
    assert limiter.rate == pytest.approx(DECREASE * 2000, rel=0.05)


async def test_after_a_cut_acquire_waits_at_the_new_rate() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    while limiter.rate is None:
        clock.t += 0.01
        limiter.settle(taken=4, consumed=2, throttled=True, refused=2)
    rate = limiter.rate
    await limiter.acquire(rate / 2)  # no burst saved up: the cut empties the bucket
    await limiter.acquire(rate)
    assert clock.sleeps == [pytest.approx(0.5), pytest.approx(1.0)]


async def test_answers_to_requests_sent_before_a_cut_do_not_cut_again() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    while limiter.rate is None:  # 2,500 WCU/s sent, a fifth refused: cut
        clock.t += 0.01
        limiter.settle(taken=25, consumed=20, throttled=True, refused=5, sent_at=clock.t)
    rate, cut_at = limiter.rate, clock.t
    for _ in range(100):  # a second of answers to what was in flight at the old rate
        clock.t += 0.01
        limiter.settle(taken=25, consumed=0, throttled=True, refused=25, sent_at=cut_at - 0.01)
    assert limiter.rate == rate


async def test_a_trace_of_refusals_is_not_throttling_and_the_rate_keeps_rising() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock, max_wcu=None, adaptive=True)
    table = SimTable(1000)
    await table.run(limiter, clock, 3)  # now limited, near 1,000 WCU/s
    table.capacity = None
    rate = limiter.rate
    assert rate is not None
    # 5 s at 1,000 WCU/s, 1 request in 8 short of 1 WCU: under the quarter that cuts
    for _ in range(200):
        clock.t += 0.025
        limiter.settle(taken=25, consumed=25 - (_ % 8 == 0), throttled=_ % 8 == 0)
    assert limiter.rate is not None
    assert limiter.rate > rate * 1.05  # past the cut's peak, probing faster and faster


async def test_refusals_that_stay_when_the_rate_is_cut_do_not_collapse_it() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    table = SimTable(1000)
    await table.run(limiter, clock, 10)  # limited, near the capacity
    table.capacity = None
    table.p_noise = 0.1  # now a flaky network, no capacity limit: ~5% refused by chance
    await table.run(limiter, clock, 10)
    # A tenth of the requests refused by chance is no capacity limit: the rate holds
    # and, by chance, probes on (measured, seeds 1-5: 790-1,160 WCU/s).
    assert fmean(table.admitted[12:-1]) >= 700


async def test_a_few_requests_refused_do_not_cut_the_rate_however_much_they_lost() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    for i in range(100):  # 1 request in 5 refused whole: a fifth of the WCU, by chance
        clock.t += 0.01
        refused = 25.0 if i % 5 == 0 else 0.0
        limiter.settle(taken=25, consumed=25 - refused, throttled=bool(refused))
    assert limiter.rate is None


async def test_most_requests_losing_an_item_each_is_a_table_over_capacity() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    for _ in range(100):  # 2,500 WCU/s sent, every request short of one item
        clock.t += 0.01
        limiter.settle(taken=25, consumed=24, throttled=True, refused=1)
        if limiter.rate is not None:
            break
    # Cut at once, to 90% of the 2,400 WCU/s it took.
    assert limiter.rate is not None
    assert DECREASE * 2400 * 0.99 <= limiter.rate <= DECREASE * 2400 * 1.01


async def test_after_a_pause_in_sending_the_capacity_is_measured_anew() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    while limiter.rate is None:  # over capacity: cut
        clock.t += 0.01
        limiter.settle(taken=25, consumed=24, throttled=True, refused=1)
    clock.t += 5  # the source paused; the table's bucket refilled meanwhile
    cut = limiter.rate
    while limiter.rate == cut:  # then 1,250 WCU/s sent, 1,000 taken
        clock.t += 0.02
        limiter.settle(taken=25, consumed=20, throttled=True, refused=5)
    # 90% of the 1,000 it takes now: the pause is no time it took nothing (counted
    # in, the cut fell to half of what was sent).
    assert limiter.rate == pytest.approx(DECREASE * 1000, rel=0.05)


async def test_writes_refused_again_do_not_cut_the_rate_for_every_key() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    for _ in range(100):  # a hot partition's leftovers, refused on every resend
        clock.t += 0.01
        limiter.settle(taken=25, consumed=20, throttled=True, refused=5, again=5)
    assert limiter.rate is None


async def test_a_job_sending_less_than_its_rate_does_not_build_up_an_unused_rate() -> None:
    clock = FakeClock(start=0.0)
    limiter = adaptive(clock)
    table = SimTable(1000)
    await table.run(limiter, clock, 5)  # cut once, near the capacity
    for _ in range(2400):  # then a minute at 100 WCU/s: the source is slow
        clock.t += 0.025
        limiter.settle(taken=2.5, consumed=2.5, throttled=False, sent_at=clock.t)
    assert limiter.rate is not None
    # Twice what was sent at most (or what it was): not the cubic's 100,000+ WCU/s.
    assert limiter.rate <= 1500
