"""Whether DynamoDB answers at all: one object shared by a job's workers.

Throttling is an answer: the table is there, and paces the job. An outage is none:
every request ends in a 5xx or a broken connection. Each write resending on its own
backoff through an outage spends its retries in seconds, and a job that gives up on a
few minutes of 503s turns a blip into a failed migration; every worker hammering a
service that is down helps no one either. So:

- after `OUTAGE_AFTER` failed requests in a row, with no answer between, DynamoDB is
  *down*: sends wait, and one at a time goes out as a probe (a real batch), at
  intervals that double from `PROBE_FIRST_S` up to `PROBE_CAP_S`;
- a write that fails while DynamoDB is down does not spend its retries;
- the first answer ends the outage, and every worker goes on at once;
- down for longer than `give_up_after_s` (`--give-up-after`), the job stops with its
  checkpoint (exit 3): nothing is rejected for DynamoDB's availability.
"""

from __future__ import annotations

from loader.backoff import Clock
from loader.errors import Aborted, Outcome
from loader.metrics import Subscriber

OUTAGE_AFTER = 8  # failed requests in a row: more than a blip of one connection
PROBE_FIRST_S = 0.5
PROBE_CAP_S = 10.0
WAIT_S = 0.1  # how often a waiting send looks again (the first answer ends the wait)


class Health:
    """DynamoDB up or down, as its answers tell (see the module)."""

    def __init__(self, clock: Clock, events: Subscriber, give_up_after_s: float) -> None:
        self._clock = clock
        self._events = events
        self._give_up_after_s = give_up_after_s
        self._failures = 0  # in a row
        self.down_since: float | None = None
        self._probing = False
        self._next_probe = 0.0
        self._interval = PROBE_FIRST_S

    @property
    def down(self) -> bool:
        return self.down_since is not None

    async def admit(self) -> bool:
        """Wait while DynamoDB is down, and say whether this send is the one probe.

        Raises:
            Aborted: down for longer than --give-up-after (outcome "retries exhausted").
        """
        while self.down_since is not None:
            now = self._clock.now()
            if now - self.down_since > self._give_up_after_s:
                raise Aborted(
                    f"DynamoDB did not answer for {_duration(now - self.down_since)} "
                    f"(--give-up-after {_duration(self._give_up_after_s)})",
                    Outcome.RETRIES_EXHAUSTED,
                )
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return True
            await self._clock.sleep(WAIT_S)
        return False

    def answered(self) -> None:
        """A request got an answer (written, throttled or refused): DynamoDB is up."""
        self._failures = 0
        if self.down_since is not None:
            self.down_since = None
            self._probing = False
            self._interval = PROBE_FIRST_S
            self._events.on_health(down_since=None)

    def failed(self, probe: bool) -> None:
        """A request got no answer (a 5xx, a broken connection); `probe`: it was the probe."""
        self._failures += 1
        now = self._clock.now()
        if self.down_since is None:
            if self._failures >= OUTAGE_AFTER:
                self.down_since = now
                self._next_probe = now + self._interval
                self._events.on_health(down_since=now)
        elif probe:
            self._probing = False
            self._interval = min(2 * self._interval, PROBE_CAP_S)
            self._next_probe = now + self._interval


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" + (f" {seconds % 60} s" if seconds % 60 else "")
