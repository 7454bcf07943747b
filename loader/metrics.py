"""Counters, rolling rates, a latency histogram, and the report.

Workers update `Metrics` once per response, never per item, and the progress
display reads an immutable `Snapshot` on its own timer, so observing the job
costs nothing in the hot path.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from loader.errors import Outcome


class Histogram:
    """Log-bucketed latency histogram: ~2% relative error, fixed memory."""

    _GROWTH = 1.02

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.max = 0.0

    def add(self, value: float) -> None:
        index = int(math.log(value, self._GROWTH)) if value > 1e-6 else -700
        self._buckets[index] = self._buckets.get(index, 0) + 1
        self.count += 1
        self.max = max(self.max, value)

    def quantile(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                return min(self.max, float(self._GROWTH ** (index + 0.5)))
        return self.max


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a job did: DESIGN.md's report, field for field.

    `outcome`, `reason` (why it stopped early) and the exit status they map to are not
    part of the JSON report.
    """

    records_read: int
    items_written: int
    deletes_written: int
    rejected: int
    skipped_on_resume: int
    requests: int
    unprocessed_retries: int
    throttled_requests: int
    errors_retried: int
    consumed_wcu: float
    estimated_wcu: float
    elapsed_s: float
    items_per_second: float
    latency_ms: dict[str, float]
    outcome: Outcome = field(default=Outcome.OK, compare=False)
    reason: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """The report as DESIGN.md specifies it (no extra fields)."""
        data = asdict(self)
        del data["outcome"], data["reason"]
        return data

    @property
    def ending(self) -> str:
        """The outcome as a person reads it: "aborted: interrupted"."""
        return f"{self.outcome.value}: {self.reason}" if self.reason else self.outcome.value

    @property
    def exit_status(self) -> int:
        """0 all written, 1 finished with rejects, 3 aborted or retries exhausted."""
        if self.outcome.stopped_early:
            return 3
        return 1 if self.rejected else 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The counters at one moment, for progress displays."""

    elapsed_s: float
    records_read: int
    written: int
    rejected: int
    consumed_wcu: float
    rate: float
    wcu_rate: float
    throttled_requests: int
    bytes_read: int


class Metrics:
    """The job's counters. Plain attributes: one event loop writes them."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.records_read = 0
        self.items_written = 0
        self.deletes_written = 0
        self.rejected = 0
        self.skipped_on_resume = 0
        self.requests = 0
        self.unprocessed_retries = 0
        self.throttled_requests = 0
        self.errors_retried = 0
        self.consumed_wcu = 0.0
        self.estimated_wcu = 0.0
        self.bytes_read = 0
        self.gave_up = 0  # rejected after --max-retries (also counted in `rejected`)
        self.latency = Histogram()
        self._window: deque[tuple[float, int, float]] = deque()

    def on_response(
        self,
        *,
        now: float,
        latency_s: float,
        puts: int,
        deletes: int,
        wcu: float,
        estimated: float,
        unprocessed: int,
    ) -> None:
        self.requests += 1
        self.items_written += puts
        self.deletes_written += deletes
        self.consumed_wcu += wcu
        self.estimated_wcu += estimated
        self.latency.add(latency_s * 1000.0)
        if unprocessed:
            # A 200 with UnprocessedItems is throttling too, only partial.
            self.unprocessed_retries += unprocessed
            self.throttled_requests += 1
        self._window.append((now, puts + deletes, wcu))

    def on_error(self, *, throttled: bool) -> None:
        self.requests += 1
        if throttled:
            self.throttled_requests += 1
        else:
            self.errors_retried += 1

    def snapshot(self, now: float, window_s: float = 5.0) -> Snapshot:
        while self._window and self._window[0][0] < now - window_s:
            self._window.popleft()
        span = min(window_s, max(now - self.started, 1e-9))
        items = sum(n for _, n, _ in self._window)
        wcu = sum(w for _, _, w in self._window)
        return Snapshot(
            elapsed_s=now - self.started,
            records_read=self.records_read + self.skipped_on_resume,
            written=self.items_written + self.deletes_written,
            rejected=self.rejected,
            consumed_wcu=self.consumed_wcu,
            rate=items / span,
            wcu_rate=wcu / span,
            throttled_requests=self.throttled_requests,
            bytes_read=self.bytes_read,
        )

    def report(self, now: float, outcome: Outcome = Outcome.OK, reason: str = "") -> LoadReport:
        if outcome is Outcome.OK and self.gave_up:
            outcome = Outcome.RETRIES_EXHAUSTED
            reason = (
                f"DynamoDB kept refusing {self.gave_up:,} records (they are in the rejects file)"
            )
        elapsed = max(now - self.started, 1e-9)
        written = self.items_written + self.deletes_written
        return LoadReport(
            records_read=self.records_read + self.skipped_on_resume,
            items_written=self.items_written,
            deletes_written=self.deletes_written,
            rejected=self.rejected,
            skipped_on_resume=self.skipped_on_resume,
            requests=self.requests,
            unprocessed_retries=self.unprocessed_retries,
            throttled_requests=self.throttled_requests,
            errors_retried=self.errors_retried,
            consumed_wcu=round(self.consumed_wcu, 3),
            estimated_wcu=round(self.estimated_wcu, 3),
            elapsed_s=round(elapsed, 3),
            items_per_second=round(written / elapsed, 1),
            latency_ms={
                "p50": round(self.latency.quantile(0.5), 2),
                "p99": round(self.latency.quantile(0.99), 2),
                "max": round(self.latency.max, 2),
            },
            outcome=outcome,
            reason=reason,
        )
