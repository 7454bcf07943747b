"""Backoff and rate control, with time and randomness injected so tests need no sleeps.

- `Backoff`: exponential with full jitter (the AWS Architecture Blog's "Exponential
  Backoff And Jitter"): the n-th retry waits uniform(0, min(cap, base × 2ⁿ⁻¹)).
- `RateLimiter`: a token bucket in WCU/s. With `--max-wcu` its rate is fixed; without,
  it adapts (CUBIC, below): it starts unlimited, cuts to 90% of what DynamoDB accepted
  when it refuses, and probes back up along a cubic curve.
"""

from __future__ import annotations

import asyncio
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
CUBIC = 0.004  # growth: rate = peak × (1 + CUBIC × (t - K)³), t seconds since the cut
MIN_START = 25.0  # one batch of 1 KB items a second
THROTTLED_SHARE = 0.01
WINDOW_S = 0.5
MAX_WINDOW_S = 2.0  # a slow table's windows grow to gather answers, up to here
EARLY_S = 0.1
THROTTLED_SHARE_EARLY = 0.05  # or twice what noise explains
NOISE_DECAY = 0.98  # per window
NOISE_CAP = 0.5
MIN_RESPONSES = 20  # a window with fewer answers says too little to act on...
MIN_RESPONSES_EARLY = 5  # ...unless many were refused


@dataclass(frozen=True, slots=True)
class _Epoch:
    """Since the last cut: the rate grows back from `peak` × DECREASE along a cubic."""

    peak: float  # the rate DynamoDB accepted when it last refused
    start: float  # when the cut was made

    def rate(self, now: float) -> float:
        k = ((1 - DECREASE) / CUBIC) ** (1 / 3)
        return self.peak * (1 + CUBIC * (now - self.start - k) ** 3)


@dataclass(frozen=True, slots=True)
class _Cut:
    share: float  # refused share of the window that caused it
    before: _Epoch | None  # the epoch it ended; None: not to be judged (see RateLimiter)


class RateLimiter:
    """Token bucket of write capacity units shared by all workers of a job.

    Workers take an item's estimated WCU before sending and settle with what
    DynamoDB reports after; sends are allowed into debt and then wait it off,
    so an item bigger than the bucket still goes out, at the right pace.

    The bucket paces what is *sent*: refused WCU are not given back, so retries
    count against the rate like fresh writes. (Refunding them, as this did once,
    let a throttled table be sent ever more: 28-65% of requests came back throttled.)

    Adaptive mode, CUBIC on the sending rate (TCP CUBIC's curve, RFC 8312, with
    WCU/s for the window): it starts unlimited. A window of answers (half a
    second, longer on a slow table until 20 are in) with over 1% of the WCU sent
    refused, UnprocessedItems or a throttling error, cuts the rate to 90% of what
    DynamoDB accepted in it (its "peak"). From there the rate follows
    peak × (1 + 0.004 (t − K)³): back to the peak in K ≈ 2.9 s, flat near it, then
    faster and faster above it, so a table whose capacity grew (or a cut made on a
    bad count) is found again within seconds, while a steady capacity sees only
    brief probes over it. A window a tenth of a second old is judged at once if 5%
    is refused: every moment over the capacity wastes requests.

    Only answers to requests sent after the last cut judge it: those in flight
    when it was made were sent at the old rate.

    Not every refusal is capacity: a flaky network, or one hot partition whose
    leftovers keep coming back, refuse about as much whatever the rate. A cut
    tells them apart: after cutting to below what DynamoDB accepted, a capacity
    limit stops refusing, noise does not. Refusals that stay (at least 70% of
    the share that caused the cut) are learnt as noise: the cut is undone and
    refusals up to that share no longer cut (the share learnt fades by 2% a
    window; it is capped at 50%). Backoff, per write, handles those refusals. Not
    judged: a cut made from no limit at all (the first; its window held the table's
    stored burst, so it can cut too little to help), and a cut held to halving the
    rate (a short window's count can be far off) that stayed above what was accepted.
    """

    def __init__(self, clock: Clock, *, max_wcu: float | None, adaptive: bool) -> None:
        self._clock = clock
        self._adaptive = adaptive and max_wcu is None
        self.rate: float | None = max_wcu
        self._tokens = max_wcu or 0.0
        self._stamp = clock.now()
        self._window_start: float | None = None  # from the first response, not from start-up
        self._responses = 0
        self._accepted = 0.0
        self._refused = 0.0
        self._epoch: _Epoch | None = None
        self._cut: _Cut | None = None  # the last window's cut, to be judged by this one
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
        now = self._clock.now()
        if self._window_start is None:
            # The first answer opens the first window; what came before it took the
            # requests' round trip, not a window's span.
            self._window_start = now
            return
        if sent_at is not None and sent_at < self._cut_at:
            return  # sent before the last cut, at the old rate: it cannot judge the cut
        # A write refused again says more about its partition than about the table's
        # rate: one hot partition's leftovers must not hold every other key back.
        self._accepted += consumed
        self._refused += refused - again
        self._responses += 1
        span = now - self._window_start
        if not self._window_over(span):
            return
        self._judge(span)
        self._window_start = now
        self._accepted = self._refused = 0.0
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
        cut, self._cut = self._cut, None
        if cut is not None and cut.before is not None and share >= 0.7 * cut.share:
            # Cut below what DynamoDB accepted, and refused as much: not capacity.
            self._noise = min(NOISE_CAP, max(self._noise, share))
            self._epoch = cut.before
            self._set_rate(max(MIN_START, cut.before.rate(now)))
        elif share <= THROTTLED_SHARE + self._noise:
            if self._epoch is not None:
                self._set_rate(max(MIN_START, self._epoch.rate(now)))
        else:
            rate = accepted * DECREASE
            if self.rate is not None:
                # Halving at most: a short window's count can be far off.
                rate = max(min(rate, self.rate * DECREASE), self.rate * MAX_CUT)
            # Judged by the next window only if it went below what DynamoDB accepted.
            judged = self._epoch is not None and rate <= accepted * DECREASE * 1.001
            self._cut = _Cut(share, self._epoch if judged else None)
            self._epoch = _Epoch(rate / DECREASE, now)
            self._set_rate(max(MIN_START, rate))
            self._tokens = min(self._tokens, 0.0) if self.rate is None else 0.0
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
        # A second's worth of burst at most: enough to keep every worker busy.
        self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
