"""Backoff and rate control, with time and randomness injected so tests need no sleeps.

- `Backoff`: exponential with full jitter (the AWS Architecture Blog's "Exponential
  Backoff And Jitter"): the n-th retry waits uniform(0, min(cap, base × 2ⁿ⁻¹)).
- `RateLimiter`: a token bucket in WCU/s. With `--max-wcu` its rate is fixed; without,
  it adapts (AIMD): it starts unlimited; a second with over 5% of the WCU refused
  drops it to 90% of what DynamoDB accepted; a quiet second raises it by 5%.
"""

from __future__ import annotations

import asyncio
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
INCREASE = 0.03
FAST_INCREASE = 0.25
MIN_STEP = 10.0
MIN_START = 25.0  # one batch of 1 KB items a second
THROTTLED_SHARE = 0.01
WINDOW_S = 1.0
NOISE_DECAY = 0.98
MIN_RESPONSES = 5  # a second with fewer answers says too little to act on


class RateLimiter:
    """Token bucket of write capacity units shared by all workers of a job.

    Workers take an item's estimated WCU before sending and settle with what
    DynamoDB reports after; sends are allowed into debt and then wait it off,
    so an item bigger than the bucket still goes out, at the right pace.

    Adaptive mode judges once a second. If more than 5% of the WCU sent was
    refused (UnprocessedItems or a throttling error), the rate becomes 90% of
    what DynamoDB accepted in that second; otherwise it grows by 5% (at least 10
    WCU/s). Against a table's capacity this saws between ~90% and 100% of it.
    Refusals that do not ease when the rate is cut are not capacity (a flaky
    network, one hot key): their share is learnt as noise and no longer cuts (it
    fades by 2% a second); backoff, per worker, handles those refusals.
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
        self._cut_share: float | None = None  # refused share of the second before a cut
        self._noise = 0.0  # refusals seen not to ease when the rate was cut
        self._best = 0.0  # the most DynamoDB accepted in one second

    async def acquire(self, wcu: float) -> None:
        """Wait until `wcu` may be spent now."""
        if self.rate is None:
            return
        self._refill()
        self._tokens -= wcu
        if self._tokens < 0:
            await self._clock.sleep(-self._tokens / self.rate)

    def settle(
        self, *, taken: float, consumed: float, throttled: bool, refused: float | None = None
    ) -> None:
        """Record a response: give back what was not consumed; adapt to throttling.

        `refused` is the WCU DynamoDB turned away (default: all not consumed when
        `throttled`, else none).
        """
        if self.rate is not None:
            self._tokens += taken - consumed
        if not self._adaptive:
            return
        self._accepted += consumed
        self._refused += (taken - consumed if throttled else 0.0) if refused is None else refused
        self._responses += 1
        now = self._clock.now()
        if self._window_start is None:
            self._window_start = now
        span = now - self._window_start
        if span < WINDOW_S or self._responses < MIN_RESPONSES:
            return
        accepted_rate = self._accepted / span
        sent = self._accepted + self._refused
        share = self._refused / sent if sent else 0.0
        self._best = max(self._best, accepted_rate)
        if self._cut_share is not None and share > THROTTLED_SHARE + self._noise:
            # A cut to 90% of what was accepted clears refusals due to capacity; these
            # stayed, so they are noise (a flaky network, one hot key), not capacity.
            self._noise = share
        if share > THROTTLED_SHARE + self._noise:
            ceiling = accepted_rate if self.rate is None else min(self.rate, accepted_rate)
            self._set_rate(max(MIN_START, ceiling * DECREASE))
            self._tokens = min(self._tokens, 0.0)
            self._cut_share = share
        else:
            self._cut_share = None
            if self.rate is not None:
                # Far below the best second seen (a cut made on noise): climb back fast.
                step = FAST_INCREASE if self.rate < self._best * 0.8 else INCREASE
                self._set_rate(self.rate + max(MIN_STEP, self.rate * step))
        self._noise *= NOISE_DECAY
        self._window_start = now
        self._accepted = self._refused = 0.0
        self._responses = 0

    def _set_rate(self, rate: float) -> None:
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
