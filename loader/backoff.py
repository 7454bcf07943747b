"""Backoff and rate control, with time and randomness injected so tests need no sleeps.

- `Backoff`: exponential with full jitter (the AWS Architecture Blog's "Exponential
  Backoff And Jitter"): the n-th retry waits uniform(0, min(cap, base × 2ⁿ⁻¹)).
- `RateLimiter`: a token bucket in WCU/s. With `--max-wcu` its rate is fixed; without,
  it adapts (CUBIC, below): it starts unlimited, cuts to 90% of what DynamoDB accepted
  when it refuses, and probes back up along a cubic curve.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """Where the loader reads time and sleeps."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff."""

    base: float = 0.05
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        ceiling = min(self.cap, self.base * 2 ** min(max(attempt - 1, 0), 62))
        return self.rng.uniform(0.0, ceiling)


DECREASE = 0.9
MAX_CUT = 0.5
CUBIC = 0.002  # growth: rate = peak × (1 + CUBIC × (t - K)³), t seconds since the cut
DEMAND_HEADROOM = 2.0  # the rate grows no further than this times what was sent
BURST_S = 0.2  # adaptive mode's bucket, in seconds of the rate
MIN_START = 25.0  # one batch of 1 KB items a second
THROTTLED_SHARE = 0.01
WINDOW_S = 0.5
MAX_WINDOW_S = 2.0  # a slow table's windows grow to gather answers, up to here
EARLY_S = 0.1
THROTTLED_SHARE_EARLY = 0.02  # or twice what noise explains
NOISE_DECAY = 0.99  # per window
NOISE_CAP = 0.5
NOISE_TEST = 0.7  # refusals that stay when a run of cuts took 30% off the rate: noise
STREAK_S = 2.0  # cuts closer together than this are one run
MIN_RESPONSES = 20  # a window with fewer answers says too little to act on...
MIN_RESPONSES_EARLY = 5  # ...unless many were refused


@dataclass(frozen=True, slots=True)
class _Epoch:
    """Since the last cut: the rate grows back from `peak` × DECREASE along a cubic."""

    peak: float  # the rate DynamoDB accepted when it last refused
    start: float  # when the cut was made

    def rate(self, now: float) -> float:
        k = float(((1 - DECREASE) / CUBIC) ** (1 / 3))
        return self.peak * (1 + CUBIC * (now - self.start - k) ** 3)


@dataclass(frozen=True, slots=True)
class _Streak:
    """A run of cuts, window after window: where it started, to tell capacity from noise."""

    epoch: _Epoch | None  # the growth before the first cut; None: unlimited
    rate: float  # the sending rate then, WCU/s
    accepted: float  # WCU/s DynamoDB accepted in the window that began it
    # The first window may hold the table's stored burst (spent after a quiet spell):
    # its count is replaced by the next window's.
    provisional: bool
    last: float  # when it last cut: a refusal more than STREAK_S later starts a new one


class RateLimiter:
    """Token bucket of write capacity units shared by all workers of a job.

    Workers take an item's estimated WCU before sending and settle with what
    DynamoDB reports after; sends are allowed into debt and then wait it off,
    so an item bigger than the bucket still goes out, at the right pace.

    The bucket paces what is *sent*: refused WCU are not given back, so retries
    count against the rate like fresh writes. (Refunding them, as this did once,
    let a throttled table be sent ever more: 28-74% of requests came back throttled.)

    Adaptive mode is CUBIC (RFC 8312's curve, with WCU/s for the window):
    - It starts unlimited. Answers are judged in windows of half a second (longer
      on a slow table, until 20 are in; a window a tenth of a second old is judged
      at once if 2% of its WCU were refused: every moment over capacity wastes
      requests).
    - A window with over 1% of the WCU sent refused (UnprocessedItems or a
      throttling error) cuts the rate to 90% of what DynamoDB accepted in it, but
      to no less than half the rate (a short window's count can be far off, and
      what was accepted may be one hot partition's share). Workers waiting in
      `acquire` then queue again at the new rate.
    - From the cut, the rate grows along peak × (1 + 0.002 (t − K)³): back to
      the peak in K ≈ 3.7 s, flat near it, faster and faster above it. So a
      steady capacity sees brief probes over it, and a cut made on a bad count,
      or a table whose capacity grew, is caught up with in seconds.
    - Only answers to requests sent after the last cut count: those in flight
      when it was made went out at the old rate.
    - A write refused again counts for its partition, not for the table's rate:
      its own backoff paces it, and one hot partition must not slow every key.

    Not every refusal is capacity: a flaky network refuses about as much whatever
    the rate. A run of cuts (each within 2 s of the last) tells them apart: once
    it has taken 30% off the rate and DynamoDB now accepts 15% less than when the
    run began, yet still refuses, the refusals follow the rate, so they are not
    capacity (a capacity limit keeps accepting as much, until the rate is under
    it and refusals stop). Then the run is undone, and refusals up to that share
    no longer cut (the share learnt fades by 1% a window; capped at 50%); backoff
    handles them. A run takes its reference from its second window: the first may
    hold the table's stored burst. Judged, and cut, on what was sent, not on the
    rate; and in quiet windows the rate grows to twice what was sent at most, so
    a job held back by its source does not build up a rate it never used.
    """

    def __init__(self, clock: Clock, *, max_wcu: float | None, adaptive: bool) -> None:
        self._clock = clock
        self._adaptive = adaptive and max_wcu is None
        self.rate: float | None = max_wcu
        self._tokens = max_wcu or 0.0
        self._stamp = clock.now()
        self._window_start: float | None = None  # opened by the window's first answer
        self._responses = 0
        self._accepted = 0.0
        self._refused = 0.0
        self._sent = 0.0  # all WCU sent in the window, refused again or not
        self._epoch: _Epoch | None = None
        self._streak: _Streak | None = None  # the current run of cuts
        self._noise = 0.0  # refused share learnt not to be capacity
        self._cut_at = -math.inf
        self._cuts = 0

    async def acquire(self, wcu: float) -> None:
        """Wait until `wcu` may be spent now."""
        while self.rate is not None:
            self._refill()
            self._tokens -= wcu
            if self._tokens >= 0:
                return
            cuts = self._cuts
            await self._clock.sleep(-self._tokens / self.rate)
            if cuts == self._cuts:
                return
            # Cut while waiting: the wait was reckoned at the old rate, and the cut
            # cleared the debts; queue again, so the waiters go out at the new rate.

    def settle(
        self,
        *,
        taken: float,
        consumed: float,
        throttled: bool,
        refused: float | None = None,
        sent_at: float | None = None,
        again: float = 0.0,
    ) -> None:
        """Record a response: give back what was not consumed; adapt to throttling.

        `refused` is the WCU DynamoDB turned away (default: all not consumed when
        `throttled`, else none); `again`, the part of it refused before, on an earlier
        send; `sent_at`, when the request went out (default: now).
        """
        if refused is None:
            refused = taken - consumed if throttled else 0.0
        if self.rate is not None:
            # What DynamoDB refused stays spent: the bucket paces what is sent, retries
            # included, or a throttled table would be sent ever more while it refuses.
            self._tokens += taken - consumed - refused
        if not self._adaptive:
            return
        if sent_at is not None and sent_at < self._cut_at:
            return  # sent before the last cut, at the old rate: it cannot judge the cut
        now = self._clock.now()
        if self._window_start is None:
            # An answer opens each window: rates are counted from one answer to the
            # next, never over a span that held a round trip and no answers.
            self._window_start = now
            return
        # A write refused again says more about its partition than about the table's
        # rate: one hot partition's leftovers must not hold every other key back.
        self._accepted += consumed
        self._refused += refused - again
        self._sent += consumed + refused
        self._responses += 1
        span = now - self._window_start
        if not self._window_over(span):
            return
        self._judge(span)
        self._window_start = None
        self._accepted = self._refused = self._sent = 0.0
        self._responses = 0

    def _window_over(self, span: float) -> bool:
        answers = self._responses
        if self.rate is None and (span < WINDOW_S or answers < MIN_RESPONSES):
            # The first cut waits for a full window: the job may still be starting up,
            # sending less than it will, and a cut to a share of that would hold it there.
            return False
        if span >= WINDOW_S and answers >= MIN_RESPONSES:
            return True
        if span >= MAX_WINDOW_S and answers >= MIN_RESPONSES_EARLY:
            return True
        early = max(THROTTLED_SHARE_EARLY, 2 * (THROTTLED_SHARE + self._noise))
        return (
            span >= EARLY_S
            and answers >= MIN_RESPONSES_EARLY
            and self._refused > early * (self._accepted + self._refused)
        )

    def _judge(self, span: float) -> None:
        now = self._clock.now()
        accepted = self._accepted / span
        sent = self._accepted + self._refused
        share = self._refused / sent if sent else 0.0
        # What was sent, not the rate: a job sending below its rate (a slow source, a
        # busy machine) is judged, and cut, on what it did.
        sent_rate = self._sent / span
        ceiling = sent_rate if self.rate is None else min(self.rate, sent_rate)
        streak = self._streak
        if streak is not None and now - streak.last > STREAK_S:
            streak = self._streak = None
        if share <= THROTTLED_SHARE + self._noise:
            if self._epoch is not None:
                # The curve grows with time; the rate, no further than twice what was
                # sent: unused, a huge rate would let a burst out when demand returns.
                grown = min(self._epoch.rate(now), DEMAND_HEADROOM * sent_rate)
                self._set_rate(max(MIN_START, self.rate or 0.0, grown))
        elif (
            streak is not None
            and not streak.provisional
            and ceiling <= NOISE_TEST * streak.rate
            and accepted <= (1 + NOISE_TEST) / 2 * streak.accepted
        ):
            # 30% off the rate, DynamoDB accepting less in step, and refusals go on:
            # not capacity, which would have taken as much as before. Noise.
            self._noise = min(NOISE_CAP, max(self._noise, share))
            self._streak = None
            self._epoch = streak.epoch
            self._set_rate(max(MIN_START, streak.epoch.rate(now)) if streak.epoch else None)
        else:
            if streak is None or streak.provisional:
                epoch = streak.epoch if streak else self._epoch
                provisional = streak is None
                self._streak = _Streak(epoch, ceiling, accepted, provisional, now)
            else:
                self._streak = dataclasses.replace(streak, last=now)
            # Halving at most: a short window's count can be far off, and what DynamoDB
            # accepted may be one hot partition's share while other keys would pass.
            rate = max(min(accepted, ceiling) * DECREASE, ceiling * MAX_CUT)
            self._epoch = _Epoch(rate / DECREASE, now)
            self._set_rate(max(MIN_START, rate))
            self._tokens = 0.0
            self._cut_at = now
            self._cuts += 1
        self._noise *= NOISE_DECAY

    def _set_rate(self, rate: float | None) -> None:
        if self.rate is not None:
            self._refill()
        else:
            self._stamp = self._clock.now()
        self.rate = rate

    def _refill(self) -> None:
        now = self._clock.now()
        assert self.rate is not None
        # A second's worth of burst at most with --max-wcu; adapting, a fifth of that: a
        # stalled event loop (a busy machine) must not make up for lost time in one
        # burst, which a table with its stored burst spent refuses, read as noise.
        ceiling = self.rate * BURST_S if self._adaptive else self.rate
        self._tokens = min(ceiling, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
