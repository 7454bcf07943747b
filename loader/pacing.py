"""Pacing: a token bucket of capacity units a second, and the policy that sets its rate
from what the table accepts.

`TokenBucket` paces what is sent. `DeliveryRate` models the table the way BBR models a
network path: by its delivery rate (capacity units *accepted* a second), not by its
refusals. A loss-based controller (CUBIC, AIMD) reads every partly refused request as
"over capacity"; refusals that do not depend on the rate (a flaky back end, a hot key,
a table mid-scaling) do not fall when the rate falls, so it cuts to the floor. Here:

The policy works in windows of half a second of answers (longer on a slow table):

- **Search.** At the first refusals it sends less, window by window, until the share
  refused stops falling. Below the table's capacity only the refusals that come at any
  rate are left: their share is the *base share*, and the capacity (the delivery
  rate) is what the table accepted while it refused more. A share that rises while
  less is sent means the capacity fell (a burst the table had saved ran out). Two
  windows must say it, and a share over half is never a base: no flaky back end
  refuses that much, and a loader that took it for one would pace at twice the
  capacity and more. The first refusals end their window at once and send at a
  quarter of what went out: loaders that start together start even.
- **Cruise.** The pace is delivery ÷ (1 − base share) × a gain just under 1: what
  must be sent, retries included, for the table to accept its delivery rate, with a
  little room, because a table whose bucket hovers near empty refuses an item from
  many requests.
- **Probe and drain.** Now and then a window goes faster. A probe the table takes whole
  raises the delivery rate and is followed by a bolder one, so a capacity that grew
  fourfold is caught up with in seconds. A probe it refuses from many requests ends
  at once, and sets the rate to what it took, or, if that is less than a probe before
  it took, to the last step of the chain below it: a table that saved a burst while
  the loader cruised takes a chain of probes whole, and the burst is no capacity. The
  window after it, slower, measures the base share again (it drifts), and the first
  window over the rate it left is a cut.
  Probes come at odd times (a seeded random), so that loaders sharing a table do not
  probe in step, and less often while they fail.
- **Cut.** Only when accepting fell while refusing rose: two cruise windows over the
  capacity, accepting well below the delivery rate, mean it fell; the search starts
  again from what was accepted. Random refusals, one hot key, a noisy window (judged
  against twice a window's spread by chance) do not cut.
- **The loader's own limit.** A window that sent well below its pace (a busy CPU, a
  slow source: "app-limited" in BBR's words) measured the loader, not the table: it is
  over the capacity only if it refused far beyond the base share, a probe it could not
  send is tried again, and what it refused is the base share.

With `ThrottlingReasons` (DynamoDB names a hot key range apart from the table's own
limit), refusals of a key range are those keys' business (their backoff paces them)
and are left out of the table's pace.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from loader.backoff import Clock

COMMIT_S = 0.02  # a send waits this long at most once it has taken its units
NAP_S = 0.25  # a send not yet taken looks at the rate again at least this often
BURST_S = 0.2  # adapting, the bucket holds this much of the rate; fixed, one second
MIN_RATE = 25.0  # one batch of 1 KB items a second
WINDOW_S = 0.5
MAX_WINDOW_S = 2.0  # a slow table's windows grow to gather answers, up to here
MIN_ANSWERS = 14  # fewer, and one refused request is a share of 7% or more
NOISE = 0.02  # a share of refusals below this is no refusal at all
START_CUT = 0.25  # at the first refusals, send no more than this share of what went out
SEARCH_STEP = 0.85  # searching, each window sends this much less...
SEARCH_WINDOWS = 4  # ...for this many windows at most
STABLE = 0.03  # shares this close, one window to the next, are the same...
MAX_NOISE = 0.12  # ...or closer than twice their spread by chance, up to this
PROBES = (1.1, 1.2, 1.35, 1.5)  # each probe the table took is followed by a bolder one
DRAIN_GAIN = 0.85  # the window after a probe, below the capacity
CRUISE_GAIN = 0.95  # below the capacity: a bucket kept near empty refuses many requests
CRUISE = (6, 10)  # windows between probes: fewer after a probe the table took, more after not
MANY_REQUESTS = 0.1  # this many more requests touched than at any rate: over capacity
AT_CAPACITY = 0.04  # refused this much beyond the base share: over the capacity
KNEE = 0.9  # a window that accepted less than this share of the delivery rate is below it
LIMITED = 0.9  # a window that sent less than this share of its pace was the loader's limit
PROBE_STOP = 6  # a probe ends past this many answers with refusals beyond the base's
MAX_BASE = 0.5  # refused beyond this share, a table is full, whatever else refuses
FELL_TO = 0.8  # cruising over the capacity, and accepting less than this share: it fell


class TokenBucket:
    """Capacity units a second, shared by all workers of a job. Sends go out into debt
    and then wait it off, so an item bigger than the bucket still goes out, at pace."""

    def __init__(self, clock: Clock, rate: float | None, burst_s: float = 1.0) -> None:
        self._clock = clock
        self.rate = rate  # None: unlimited
        self._burst_s = burst_s
        self._tokens = (rate or 0.0) * burst_s
        self._stamp = clock.now()

    async def acquire(self, units: float) -> None:
        """Wait until `units` may be spent now. A rate of 0 sends nothing until it
        changes (a fleet task's share not yet granted)."""
        while self.rate is not None:
            if self.rate <= 0.0:
                await self._clock.sleep(NAP_S)
                continue
            self._refill()
            wait = -self._tokens / self.rate
            if wait <= COMMIT_S:
                self._tokens -= units
                if wait > 0:
                    await self._clock.sleep(wait)
                return
            # Not taken yet: a send that waits uncommitted goes at the rate of when it
            # goes, so a change of rate takes effect at once, not after the queue.
            await self._clock.sleep(min(wait - COMMIT_S / 2, NAP_S))

    def give_back(self, units: float) -> None:
        """Units taken and not spent (an estimate above what was consumed); negative:
        spent beyond what was taken."""
        if self.rate is not None:
            self._tokens += units

    def set_rate(self, rate: float | None) -> None:
        """Pace at `rate` from now."""
        if self.rate is not None:
            self._refill()
        else:
            self._stamp = self._clock.now()
        self.rate = rate

    def _refill(self) -> None:
        assert self.rate is not None
        now = self._clock.now()
        ceiling = self.rate * self._burst_s
        self._tokens = min(ceiling, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now


@dataclass(slots=True)
class _Window:
    start: float
    pace: float | None
    answers: int = 0
    sent: float = 0.0
    accepted: float = 0.0
    refused: float = 0.0
    refused_answers: int = 0


@dataclass(slots=True)
class _Sample:
    """One judged window: rates a second, and the share of what was sent refused."""

    sent: float
    accepted: float
    share: float
    requests: float  # the share of answers that had something refused
    noise: float  # what the share can differ by from the last window's by chance
    request_noise: float  # and the share of requests
    limited: bool  # the loader sent well below its pace: its own limit, not the table's


class DeliveryRate:
    """The policy: watches every answer and sets `bucket`'s rate (see the module)."""

    def __init__(self, clock: Clock, bucket: TokenBucket, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self._bucket = bucket
        self.delivery: float | None = None  # None: not yet refused, the pace is unlimited
        self.base_share = 0.0  # refused whatever the rate, of what is sent
        self.base_requests = 0.0  # and the share of requests those refusals touch
        self.searching = False  # looking for the rate below which refusals stop falling
        self._last: _Sample | None = None
        self._over: list[float] = []  # accepted rates of cruise windows over capacity
        self._chain: list[float] = []  # the delivery rate before each probe taken in a row
        self._full = 0.0  # searching: the accepted rate of the last window that refused
        self._searched = 0  # windows into the search
        self._quiet = False  # searching, a window just refused nothing
        self._phase = 0  # windows since the last probe
        self._probe = 0
        self._refused = False  # the last probe was refused; what it left is not yet tried
        self._cruise = CRUISE[0]
        self._window: _Window | None = None
        self.cuts = 0

    def answered(self, *, sent: float, accepted: float, refused: float) -> None:
        """One answer: `sent` units went out; the table accepted `accepted` and refused
        (throttled) `refused` of them; the rest failed for other reasons."""
        now = self._clock.now()
        window = self._window
        if window is None:
            # An answer opens each window: rates are counted from one answer to the
            # next, never over a span that held a round trip and no answers.
            self._window = _Window(now, self._bucket.rate)
            return
        window.answers += 1
        window.sent += sent
        window.accepted += accepted
        window.refused += refused
        window.refused_answers += refused > 0
        span = now - window.start
        # A probe the table refuses from many requests is over at once: the rest of its
        # window would be refused too (the table spent what it had saved).
        full = (
            span >= COMMIT_S
            and self._phase == 0
            and not self.searching
            and window.refused_answers
            > PROBE_STOP + window.answers * (self.base_requests + MANY_REQUESTS)
        )
        if (
            full
            or (span >= WINDOW_S and window.answers >= MIN_ANSWERS)
            or (span >= MAX_WINDOW_S and window.answers >= 2)
        ):
            self._window = None
            share = window.refused / window.sent if window.sent else 0.0
            if self.delivery is None and share <= NOISE:
                return
            sample = self._sample(window, span, share)
            if self.delivery is None or self.searching:
                self._search(sample)
            else:
                self._cruise_window(sample)
            self._last = sample

    def _sample(self, window: _Window, span: float, share: float) -> _Sample:
        """The window's rates, and what its shares can differ by from the last window's
        with no change at all: refusals come a request at a time."""
        requests = window.refused_answers / window.answers
        sent_rate = window.sent / span
        limited = window.pace is None or sent_rate < LIMITED * window.pace
        last = self._last or _Sample(0, 0, share, requests, 0, 0, limited)
        spread = max(share, last.share) * (1 - min(share, last.share))
        noise = min(MAX_NOISE, max(STABLE, 2 * math.sqrt(spread / window.answers)))
        spread = max(requests, last.requests) * (1 - min(requests, last.requests))
        request_noise = max(MANY_REQUESTS, 2 * math.sqrt(spread / window.answers))
        accepted = window.accepted / span
        return _Sample(sent_rate, accepted, share, requests, noise, request_noise, limited)

    def _search(self, now: _Sample) -> None:
        """Send less, window by window, until the share refused stops falling: below
        the table's capacity only the refusals that come whatever the rate are left."""
        last = self._last
        accepted, share = now.accepted, now.share
        if self.delivery is None or last is None or not self.searching:
            rate = SEARCH_STEP * accepted
            if self.delivery is None:
                # The first refusals end a window at once (the table spent what it had
                # saved), and so early it may hold only one hot key's answers: what it
                # accepted says little, what went out says how far over it was.
                rate = max(rate, START_CUT * now.sent)
            self.searching = True
            self._searched = 0
            self.delivery = accepted
            self._set(rate)
            return
        self._searched += 1
        confirming, self._quiet = self._quiet, False
        # Long enough, the refusals that stay come at this rate too (a table shared
        # with other loaders is full whatever this one sends).
        if self._searched < SEARCH_WINDOWS:
            if share > last.share + now.noise:
                # Refused more while sending less: the capacity fell (a burst ran out).
                self.delivery = self._full = accepted
                self._set(SEARCH_STEP * accepted)
                return
            if share < last.share - now.noise:
                self._full = max(self._full, accepted)
                if share > NOISE:
                    # Still refusing, and it takes what it can: send a little less.
                    self._set(SEARCH_STEP * accepted)
                    return
                if not confirming:
                    # Nothing refused: every refusal was the capacity's, or a window of
                    # a few dozen answers had none by chance. One more says which.
                    self._quiet = True
                    return
        if share > MAX_BASE or (self._searched < 2 and share > NOISE):
            # Not yet: a share the first window after a cut repeats may be the cut
            # window's, a table over its capacity; and most of what is sent refused
            # is no flaky back end (no load could go on at that), but a full table.
            self._set(SEARCH_STEP * accepted)
            return
        # As much refused at this rate as at the last: those refusals do not depend on
        # the rate. The capacity is what the table took while it refused more.
        self.searching = False
        if abs(share - last.share) <= now.noise:
            # Two windows measured it: one alone is a few dozen answers.
            self.base_share = (share + last.share) / 2
            self.base_requests = (now.requests + last.requests) / 2
        else:
            self.base_share = share
            self.base_requests = now.requests
        self.delivery = max(accepted, last.accepted, self._full)
        self._full = 0.0
        # Probe at once: what the search found may be one hot key range's share, or,
        # refused from the first answers, what the loader sent before it got going.
        self._phase = 0
        self._pace()

    def _cruise_window(self, now: _Sample) -> None:
        """Judge a window of the cycle (a probe, a drain or a cruise) and set the next
        pace. One function: the three judge against the same estimate, and the order
        of the checks is the policy."""
        assert self.delivery is not None
        phase, base = self._phase, self.base_share
        accepted, share = now.accepted, now.share
        # Over the capacity: more refused than at any rate; or, as a table whose bucket
        # hovers near empty does, a few items refused from many more requests.
        more = share > base + max(AT_CAPACITY, now.noise)
        more = more or now.requests > self.base_requests + now.request_noise
        clearly = share > base + 2 * max(AT_CAPACITY, now.noise)
        # A window the loader could not fill (a busy CPU, a slow source) shows what the
        # loader sent, not what the table takes: only a clear excess says "full".
        over = clearly or (more and not now.limited)
        if phase == 0:  # a probe
            # What it took at the base share: a window's chance refusals are no limit.
            took = accepted * (1 - base) / max(1 - share, 0.05)
            grew = took > self.delivery * (1 + (PROBES[self._probe] - 1) / 2)
            if grew and not over:
                # Taken whole: the capacity is more (or the table spent a burst it had
                # saved up); probe again, bolder.
                self._chain.append(self.delivery)
                self.delivery = accepted
                self._probe = min(self._probe + 1, len(PROBES) - 1)
                self._cruise = CRUISE[0]
                self._over.clear()
                self._pace()
                return
            if not over and now.limited:
                # The loader could not send the probe: it says nothing. Probe again.
                self._pace()
                return
            if over and not self._chain and accepted < FELL_TO * self.delivery:
                # Far less taken than the estimate, at a probe's pace: the search was
                # misled (a window in which the table spent a saved burst looks like
                # refusals at any rate). Search again from what it took.
                self._probe = 0
                self._restart(accepted)
                return
            if over:
                # The table was full: what it took is its capacity. Probes of the chain
                # that went faster than that were paid for by a burst it had saved.
                self.delivery = max((c for c in self._chain if c <= accepted), default=accepted)
            self._refused = over
            self._chain.clear()
            self._probe = 0
            self._cruise = min(self._cruise + 4, CRUISE[1])
        elif not more and ((phase == 1 and accepted < KNEE * self.delivery) or now.limited):
            # Below the capacity (a drain, or the loader's own limit), what is refused
            # is the base share; it may drift (a flakier back end): learn it again. Not
            # upwards just after a refused probe: the table was left with nothing saved.
            requests = now.requests
            if phase == 1 and self._refused:
                share, requests = min(share, base), min(requests, self.base_requests)
            self.base_share += (share - base) / 2
            self.base_requests += (requests - self.base_requests) / 2
        elif over and phase != 1:
            self._over.append(accepted)
            # Just after a refused probe, one window says it: the estimate is what a
            # probe taken from a burst left.
            if clearly or self._refused or len(self._over) >= 2:
                # Cruising over the capacity: it is what the table accepted meanwhile.
                self._over.sort()
                fell = self._over[len(self._over) // 2]
                self._over.clear()
                self._refused = False
                if fell < FELL_TO * self.delivery:
                    self._restart(fell)
                    return
                self.delivery = fell
        else:
            self._over.clear()
        self._phase = phase + 1
        if self._phase >= self._cruise + 2:
            # Probes at odd times: loaders sharing a table must not probe in step, or
            # the one that probes first keeps what the others give up.
            self._phase = -self._rng.randrange(self._cruise // 2 + 1)
        self._pace()

    def _restart(self, accepted: float) -> None:
        """A cut: search again, from below what the table took, not from the cycle's
        next pace (which may be a probe)."""
        self.cuts += 1
        self.searching = True
        self._searched = 0
        self._full = self.delivery = accepted
        self._set(SEARCH_STEP * accepted)

    def _pace(self) -> None:
        assert self.delivery is not None
        if self._phase == 0:
            gain = PROBES[self._probe]
        else:
            gain = DRAIN_GAIN if self._phase == 1 else CRUISE_GAIN
        self._set(gain * self.delivery / max(1.0 - self.base_share, 0.05))

    def _set(self, rate: float) -> None:
        self._bucket.set_rate(max(MIN_RATE, rate))


class Pacer:
    """What a worker asks before each send and tells after: a bucket, and with no
    fixed rate (`--max-wcu`) the delivery-rate policy that sets it."""

    def __init__(
        self,
        clock: Clock,
        *,
        fixed: float | None,
        adaptive: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        adapt = adaptive and fixed is None
        self.bucket = TokenBucket(clock, fixed, burst_s=BURST_S if adapt else 1.0)
        self.policy = DeliveryRate(clock, self.bucket, rng or random.Random()) if adapt else None

    @property
    def rate(self) -> float | None:
        return self.bucket.rate

    async def acquire(self, units: float) -> None:
        await self.bucket.acquire(units)

    def settle(
        self,
        *,
        taken: float,
        consumed: float,
        refused: float = 0.0,
        key_range: float = 0.0,
    ) -> None:
        """After an answer: `taken` units were acquired; the table consumed `consumed`
        and refused (throttled) `refused`, of which `key_range` for a hot key range.
        What it refused stays spent: the bucket paces what is sent, retries included,
        or a throttled table would be sent ever more while it refuses."""
        self.bucket.give_back(taken - consumed - refused)
        if self.policy is not None:
            sent = taken - key_range
            self.policy.answered(
                sent=sent, accepted=consumed, refused=max(0.0, refused - key_range)
            )
