"""Time and backoff, injected so tests need no sleeps.

`Backoff` is exponential with full jitter (the AWS Architecture Blog's "Exponential
Backoff And Jitter"): the n-th retry waits uniform(0, min(cap, base × 2ⁿ⁻¹)). The pace
of the whole job is loader.pacing's.
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
    cap: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        ceiling = min(self.cap, self.base * 2 ** min(max(attempt - 1, 0), 62))
        return self.rng.uniform(0.0, ceiling)
