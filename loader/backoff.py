"""Backoff and rate control, with time and randomness injected so tests need no sleeps.

- `Backoff`: exponential with full jitter (the AWS Architecture Blog's "Exponential
  Backoff And Jitter"): the n-th retry waits uniform(0, min(cap, base × 2ⁿ⁻¹)).
- `RateLimiter`: a token bucket in WCU/s. With `--max-wcu` its rate is fixed; without,
  it adapts (CUBIC, below): it starts unlimited, cuts to 90% of what DynamoDB accepted
  when it refuses, and probes back up along a cubic curve.
"""

from __future__ import annotations

import asyncio
import collections
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
THROTTLED_SHARE = 0.25  # of a window's answers: over it, the table is over capacity
THROTTLED_SHARE_EARLY = 0.5
WINDOW_S = 0.5
MAX_WINDOW_S = 2.0  # a slow table's windows grow to gather answers, up to here
EARLY_S = 0.1
RECENT_S = 1.0  # cuts look back this far at what was sent and accepted
MIN_RESPONSES = 20  # a window with fewer answers says too little to act on...
MIN_RESPONSES_EARLY = 5  # ...unless most were refused


@dataclass(frozen=True, slots=True)
class _Epoch:
    """Since the last cut: the rate grows back from `peak` × DECREASE along a cubic."""

    peak: float  # the rate DynamoDB accepted when it last refused
    start: float  # when the cut was made

    def rate(self, now: float) -> float:
        k = float(((1 - DECREASE) / CUBIC) ** (1 / 3))
        return self.peak * (1 + CUBIC * (now - self.start - k) ** 3)


class RateLimiter:
    """Token bucket of write capacity units shared by all workers of a job.

    Workers take an item's estimated WCU before sending and settle with what
    DynamoDB reports after; sends are allowed into debt and then wait it off,
    so an item bigger than the bucket still goes out, at the right pace.

    The bucket paces what is *sent*: refused WCU are not given back, so retries
    count against the rate like fresh writes. (Refunded, they would let a throttled
    table be sent ever more.)

    Adaptive mode is CUBIC (RFC 8312's curve, with WCU/s for the window):
    - It starts unlimited. Answers are judged in windows of half a second and 20
      answers (after the first cut, on a slow table, 2 s and 5 answers do); sooner
      when over half of a window's answers were throttled: after 0.1 s and 5
      answers, or 20 before the first cut (a job starting up sends less than it will).
    - A window in which over a quarter of the requests were throttled (items
      unprocessed or a throttling error) cuts the rate to 90% of the table's
      capacity as measured: what it accepted of the requests sent since the first
      refusal of this run of throttled windows (its bucket empty from then on), once
      5 answers are in; else the most it accepted in the window or the last second
      (a window that held a stall of this process counts too little). The cut goes
      to no less than half of the rate, or of what was sent if less (over the window
      or the last second): a count can be far off, and what was accepted may be one
      hot partition's share. Workers waiting in `acquire` then queue again at the
      new rate.
    - From the cut, the rate grows along peak × (1 + 0.002 (t − K)³): back to
      the peak in K ≈ 3.7 s, flat near it, faster and faster above it. So a
      steady capacity sees brief probes over it, and a cut made on a bad count,
      or a table whose capacity grew, is caught up with in seconds.
    - Whether a window is throttled is judged on answers to requests sent after
      the last cut (those in flight when it was made went out at the old rate);
      what the table accepted is counted from all answers.
    - A request whose refused items had all been refused before counts as throttled
      only if most of it was refused: one hot partition's leftovers among other
      keys must not slow every key (their own backoff paces them), but a fast
      client's requests fill with retries alone while the table is over capacity.

    Why a share of *requests*, not of WCU: a table over its capacity has an empty
    bucket, so from then on nearly every request loses some items, however few;
    refusals that are not capacity (a flaky network, a hot key) hit a few requests
    whatever the rate. Counting WCU cannot tell the two apart: a low bar is cut by
    random refusals again and again, and learning which refusals are noise mistakes
    capacity for noise and then runs over it. A request is the unit of waste, too:
    a throttled request is one more round trip.

    Judged, and cut, on what was sent, not on the rate; and in quiet windows the
    rate grows to twice what was sent at most, so a job held back by its source
    does not build up a rate it never used.
    """

    def __init__(self, clock: Clock, *, max_wcu: float | None, adaptive: bool) -> None:
        self._clock = clock
        self._adaptive = adaptive and max_wcu is None
        self.rate: float | None = max_wcu
        self._tokens = max_wcu or 0.0
        self._stamp = clock.now()
        self._window_start: float | None = None  # opened by the window's first answer
        self._responses = 0
        self._throttled = 0  # throttled answers (see `settle`)
        self._accepted = 0.0
        self._sent = 0.0  # all WCU sent in the window, refused again or not
        # Since the first refusal of a run of throttled windows (the table's bucket was
        # empty from then on): what the table accepted of the requests sent from then
        # on, before a cut or after (the table's count, whatever our rate was), and
        # until when they were sent. Counted by when requests were sent, not answered:
        # a refusal comes back sooner than a write, and writes admitted before it
        # would be counted after it.
        self._refused_from: float | None = None
        self._sent_until = 0.0
        self._accepted_since = 0.0
        self._answers_since = 0
        # (when, WCU accepted, WCU sent) of every answer in the last second, sent
        # before a cut or not.
        self._recent: collections.deque[tuple[float, float, float]] = collections.deque()
        self._recent_accepted = self._recent_sent = 0.0
        self._epoch: _Epoch | None = None
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
        self._recent.append((now, consumed, consumed + refused))
        self._recent_accepted += consumed
        self._recent_sent += consumed + refused
        while self._recent[0][0] < now - RECENT_S:
            _, old_accepted, old_sent = self._recent.popleft()
            self._recent_accepted -= old_accepted
            self._recent_sent -= old_sent
        # Throttled: a request with writes refused for the first time, or mostly refused.
        # Writes refused again say more about their partition than about the table's
        # rate (one hot partition's leftovers among other keys must not slow every
        # key), but a fast client's requests fill with retries alone while the table
        # is over capacity.
        throttled = refused > again or consumed < refused
        sent = now if sent_at is None else sent_at
        if self._refused_from is not None and sent - self._sent_until > MAX_WINDOW_S:
            # Nothing was sent for a while (a slow source, a pause between files): the
            # table's bucket refilled, and the pause would count as a time it took nothing.
            self._refused_from = None
            self._accepted_since = 0.0
            self._answers_since = 0
        if self._refused_from is None:
            if throttled:
                self._refused_from = self._sent_until = sent
        elif sent > self._refused_from:
            self._accepted_since += consumed
            self._answers_since += 1
            self._sent_until = max(self._sent_until, sent)
        if sent_at is not None and sent_at < self._cut_at:
            return  # sent before the last cut, at the old rate: it cannot judge the cut
        if self._window_start is None:
            # An answer opens each window: rates are counted from one answer to the
            # next, never over a span that held a round trip and no answers.
            self._window_start = now
            return
        self._accepted += consumed
        self._sent += consumed + refused
        self._responses += 1
        self._throttled += throttled
        span = now - self._window_start
        if not self._window_over(span):
            return
        self._judge(span)
        self._window_start = None
        self._accepted = self._sent = 0.0
        self._responses = self._throttled = 0

    def _window_over(self, span: float) -> bool:
        answers = self._responses
        if self.rate is None and (span < WINDOW_S or answers < MIN_RESPONSES):
            # The first cut waits for a full window, or for 20 answers mostly refused: the
            # job may still be starting up, sending less than it will, and a cut to a
            # share of that would hold it there.
            return (
                span >= EARLY_S
                and answers >= MIN_RESPONSES
                and self._throttled > THROTTLED_SHARE_EARLY * answers
            )
        if span >= WINDOW_S and answers >= MIN_RESPONSES:
            return True
        if span >= MAX_WINDOW_S and answers >= MIN_RESPONSES_EARLY:
            return True
        # Every moment over capacity wastes requests: a window where most are refused
        # is judged at once.
        return (
            span >= EARLY_S
            and answers >= MIN_RESPONSES_EARLY
            and self._throttled > THROTTLED_SHARE_EARLY * answers
        )

    def _judge(self, span: float) -> None:
        now = self._clock.now()
        # What was sent, not the rate: a job sending below its rate (a slow source, a
        # busy machine) is judged, and cut, on what it did.
        sent_rate = self._sent / span
        if self._throttled <= THROTTLED_SHARE * self._responses:
            # Under capacity again (or never over): the next run of refusals counts anew.
            self._refused_from = None
            self._accepted_since = 0.0
            self._answers_since = 0
            if self._epoch is not None:
                # The curve grows with time; the rate, no further than twice what was
                # sent: unused, a huge rate would let a burst out when demand returns.
                grown = min(self._epoch.rate(now), DEMAND_HEADROOM * sent_rate)
                self._set_rate(max(MIN_START, self.rate or 0.0, grown))
            return
        # Over the last second too: a short window that held a stall of this process
        # (or of the network) counts too little, and a cut to it would take the rate
        # seconds of growth to make up.
        sent_rate = max(sent_rate, self._recent_sent / RECENT_S)
        ceiling = sent_rate if self.rate is None else min(self.rate, sent_rate)
        since = self._refused_from
        if (
            since is not None
            and self._answers_since >= MIN_RESPONSES_EARLY
            and self._sent_until > since
        ):
            # Once the table refuses, its bucket is empty: what it takes from then on is
            # its capacity, counted over the whole run of throttled windows (a short
            # span's count is far off: answers come in bunches). Before the first
            # refusal, the table may have spent a burst it had saved up.
            accepted = self._accepted_since / (self._sent_until - since)
        else:
            accepted = max(self._accepted / span, self._recent_accepted / RECENT_S)
        # Halving at most: a short window's count can be far off, and what DynamoDB
        # accepted may be one hot partition's share while other keys would pass.
        rate = max(min(accepted, ceiling) * DECREASE, ceiling * MAX_CUT)
        self._epoch = _Epoch(rate / DECREASE, now)
        self._set_rate(max(MIN_START, rate))
        self._tokens = 0.0
        self._cut_at = now
        self._cuts += 1

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
        # burst, which a table with its stored burst spent would refuse.
        ceiling = self.rate * BURST_S if self._adaptive else self.rate
        self._tokens = min(ceiling, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
