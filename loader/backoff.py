"""Backoff and rate control, with time and randomness injected so tests need no sleeps.

- `Backoff`: exponential with full jitter (the AWS Architecture Blog's "Exponential
  Backoff And Jitter"): the n-th retry waits uniform(0, min(cap, base × 2ⁿ⁻¹)).
- `RateLimiter`: a token bucket in WCU/s. With `--max-wcu` its rate is fixed; without,
  it adapts by AIMD: it starts unlimited, and on throttling drops to 70% of the rate
  DynamoDB actually accepted over the last second; every quiet second it probes up
  by 5% (at least 10 WCU/s), so it settles just under what the table gives.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
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


DECREASE = 0.7
INCREASE = 0.05
MIN_STEP = 10.0
MIN_START = 25.0  # one batch of 1 KB items a second: never slower than that
WINDOW_S = 1.0


class RateLimiter:
    """Token bucket of write capacity units shared by all workers of a job.

    Workers take an item's estimated WCU before sending and settle with what
    DynamoDB reports after; sends are allowed into debt and then wait it off,
    so an item bigger than the bucket still goes out, at the right pace.
    """

    def __init__(self, clock: Clock, *, max_wcu: float | None, adaptive: bool) -> None:
        self._clock = clock
        self._fixed = max_wcu
        self._adaptive = adaptive and max_wcu is None
        self.rate: float | None = max_wcu
        self._tokens = max_wcu or 0.0
        self._stamp = clock.now()
        self._accepted: deque[tuple[float, float]] = deque()
        self._last_cut = -1e9
        self._last_raise = clock.now()

    async def acquire(self, wcu: float) -> None:
        """Wait until `wcu` may be spent now."""
        if self.rate is None:
            return
        self._refill()
        self._tokens -= wcu
        if self._tokens < 0:
            await self._clock.sleep(-self._tokens / self.rate)

    def settle(self, *, taken: float, consumed: float, throttled: bool) -> None:
        """Record a response: give back what was not consumed; adapt to throttling."""
        now = self._clock.now()
        if self.rate is not None:
            self._tokens += taken - consumed
        if not self._adaptive:
            return
        self._accepted.append((now, consumed))
        while self._accepted and self._accepted[0][0] < now - WINDOW_S:
            self._accepted.popleft()
        if throttled:
            # One cut per window: the responses already in flight report the same congestion.
            if now - self._last_cut >= WINDOW_S:
                span = min(WINDOW_S, max(now - self._accepted[0][0], 0.1))
                accepted = sum(c for _, c in self._accepted) / span
                if self.rate is None:
                    base = max(accepted, MIN_START)
                else:
                    self._refill()
                    base = min(self.rate, max(accepted, MIN_START))
                self.rate = base * DECREASE
                self._tokens = min(self._tokens, 0.0)
                self._stamp = now
                self._last_cut = self._last_raise = now
        elif self.rate is not None and now - self._last_raise >= WINDOW_S:
            self._refill()
            self.rate += max(MIN_STEP, self.rate * INCREASE)
            self._last_raise = now

    def _refill(self) -> None:
        now = self._clock.now()
        assert self.rate is not None
        # A second's worth of burst at most: enough to keep every worker busy.
        self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
