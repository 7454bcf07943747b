"""The job's events, the counters they add up to, a latency histogram, and the report.

The stages announce what happened through one `Events` stream (records read,
a response, an error, records rejected), once per batch or per chunk of input,
never per item. `Metrics` is the subscriber that counts; a progress display
reads its immutable `Snapshot` on its own timer. Writer processes ship their
`Counters` and `Histogram` to the main process, which merges them by addition:
no percentile is ever averaged.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from loader.errors import Outcome


class Histogram:
    """Log-bucketed latency histogram: ~2% relative error, fixed memory; mergeable."""

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

    def merge(self, other: Histogram) -> None:
        """Add `other`'s samples to these, as if they had been added here."""
        for index, hits in other._buckets.items():
            self._buckets[index] = self._buckets.get(index, 0) + hits
        self.count += other.count
        self.max = max(self.max, other.max)

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
class Counters:
    """What a job (or one of its writer processes) has counted so far."""

    records_read: int = 0
    items_written: int = 0
    deletes_written: int = 0
    rejected: int = 0
    skipped_on_resume: int = 0
    requests: int = 0
    unprocessed_retries: int = 0
    throttled_requests: int = 0
    errors_retried: int = 0
    consumed_wcu: float = 0.0
    estimated_wcu: float = 0.0
    # Of the throttled requests, those DynamoDB said were one hot key range's alone.
    key_range_throttles: int = 0
    # DynamoDB's ThrottlingReasons, each with how many throttled requests named it.
    throttling_reasons: tuple[tuple[str, int], ...] = ()

    def __add__(self, other: Counters) -> Counters:
        reasons = dict(self.throttling_reasons)
        for reason, count in other.throttling_reasons:
            reasons[reason] = reasons.get(reason, 0) + count
        sums = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in dataclasses.fields(self)
            if f.name != "throttling_reasons"
        }
        return Counters(**sums, throttling_reasons=tuple(sorted(reasons.items())))

    @property
    def written(self) -> int:
        return self.items_written + self.deletes_written


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a job did: the report of the README, field for field.

    `outcome`, `reason` (why it stopped early), the exit status they map to and
    `first_rejects` (the first few, for a person to read) are not part of the JSON report.
    """

    records_read: int
    items_written: int
    deletes_written: int
    rejected: int
    skipped_on_resume: int
    requests: int
    unprocessed_retries: int
    throttled_requests: int
    throttling_reasons: dict[str, int]
    errors_retried: int
    consumed_wcu: float
    estimated_wcu: float
    elapsed_s: float
    items_per_second: float
    latency_ms: dict[str, float]
    outcome: Outcome = field(default=Outcome.OK, compare=False)
    reason: str = field(default="", compare=False)
    first_rejects: tuple[str, ...] = field(default=(), compare=False)  # "source:line: reason"

    def to_json(self) -> dict[str, Any]:
        """The report as the README specifies it (no extra fields)."""
        data = asdict(self)
        del data["outcome"], data["reason"], data["first_rejects"]
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
    unavailable_s: float = 0.0  # how long DynamoDB has not answered at all, if it has not
    key_range_throttles: int = 0  # of the throttled requests, a hot key range's alone
    skipped: int = 0  # records a resume left out so far


class Subscriber:
    """Receives the job's events; each method is a no-op unless overridden. Arguments
    are keyword-only, so that a new field never breaks a subscriber."""

    def on_read(self, *, records: int) -> None:
        """`records` more input records were read (rejected or not)."""

    def on_skipped(self, *, records: int) -> None:
        """A resume has skipped `records` so far (a running total)."""

    def on_bytes(self, *, read: int) -> None:
        """The input has been read up to byte `read` (a running total)."""

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
        """DynamoDB answered a request: what it wrote, and how many it left unprocessed."""

    def on_error(self, *, throttled: bool, reasons: tuple[str, ...] = ()) -> None:
        """A request failed as a whole (throttled, or another error to retry); `reasons`
        are DynamoDB's ThrottlingReasons, when it gave them."""

    def on_rejected(self, *, records: int) -> None:
        """`records` went to the rejects file."""

    def on_health(self, *, down_since: float | None) -> None:
        """DynamoDB stopped answering at `down_since` (None: it answers again)."""

    def on_dry_run(self, *, estimated: float) -> None:
        """A request that --dry-run counted instead of sending."""


class Events(Subscriber):
    """The one stream: every event goes to each subscriber in turn."""

    def __init__(self, subscribers: Iterable[Subscriber]) -> None:
        self._subscribers = tuple(subscribers)

    def on_read(self, *, records: int) -> None:
        for subscriber in self._subscribers:
            subscriber.on_read(records=records)

    def on_skipped(self, *, records: int) -> None:
        for subscriber in self._subscribers:
            subscriber.on_skipped(records=records)

    def on_bytes(self, *, read: int) -> None:
        for subscriber in self._subscribers:
            subscriber.on_bytes(read=read)

    def on_response(self, **fields: Any) -> None:
        for subscriber in self._subscribers:
            subscriber.on_response(**fields)

    def on_error(self, *, throttled: bool, reasons: tuple[str, ...] = ()) -> None:
        for subscriber in self._subscribers:
            subscriber.on_error(throttled=throttled, reasons=reasons)

    def on_rejected(self, *, records: int) -> None:
        for subscriber in self._subscribers:
            subscriber.on_rejected(records=records)

    def on_health(self, *, down_since: float | None) -> None:
        for subscriber in self._subscribers:
            subscriber.on_health(down_since=down_since)

    def on_dry_run(self, *, estimated: float) -> None:
        for subscriber in self._subscribers:
            subscriber.on_dry_run(estimated=estimated)


class Metrics(Subscriber):
    """Counts the events. Plain attributes: one event loop writes them."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.records_read = 0
        self.items_written = 0
        self.deletes_written = 0
        self.rejected = 0
        self.down_since: float | None = None
        self.skipped_on_resume = 0
        self.requests = 0
        self.unprocessed_retries = 0
        self.throttled_requests = 0
        self.key_range_throttles = 0
        self.throttling_reasons: dict[str, int] = {}
        self.errors_retried = 0
        self.consumed_wcu = 0.0
        self.estimated_wcu = 0.0
        self.bytes_read = 0
        self.latency = Histogram()
        self._window: deque[tuple[float, int, float]] = deque()

    def on_read(self, *, records: int) -> None:
        self.records_read += records

    def on_skipped(self, *, records: int) -> None:
        self.skipped_on_resume = records

    def on_bytes(self, *, read: int) -> None:
        self.bytes_read = read

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

    def on_error(self, *, throttled: bool, reasons: tuple[str, ...] = ()) -> None:
        self.requests += 1
        if throttled:
            self.throttled_requests += 1
            if reasons and all("KeyRange" in reason for reason in reasons):
                self.key_range_throttles += 1
            for reason in set(reasons):
                self.throttling_reasons[reason] = self.throttling_reasons.get(reason, 0) + 1
        else:
            self.errors_retried += 1

    def on_rejected(self, *, records: int) -> None:
        self.rejected += records

    def on_health(self, *, down_since: float | None) -> None:
        self.down_since = down_since

    def on_dry_run(self, *, estimated: float) -> None:
        self.requests += 1
        self.estimated_wcu += estimated

    def counters(self) -> Counters:
        """What has been counted so far, as one immutable value."""
        return Counters(
            records_read=self.records_read,
            items_written=self.items_written,
            deletes_written=self.deletes_written,
            rejected=self.rejected,
            skipped_on_resume=self.skipped_on_resume,
            requests=self.requests,
            unprocessed_retries=self.unprocessed_retries,
            throttled_requests=self.throttled_requests,
            errors_retried=self.errors_retried,
            consumed_wcu=self.consumed_wcu,
            estimated_wcu=self.estimated_wcu,
            key_range_throttles=self.key_range_throttles,
            throttling_reasons=tuple(sorted(self.throttling_reasons.items())),
        )

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
            unavailable_s=0.0 if self.down_since is None else now - self.down_since,
            key_range_throttles=self.key_range_throttles,
            skipped=self.skipped_on_resume,
        )

    def report(self, now: float, outcome: Outcome = Outcome.OK, reason: str = "") -> LoadReport:
        return report_of(self.counters(), self.latency, now - self.started, outcome, reason)


def report_of(
    counts: Counters,
    latency: Histogram,
    elapsed_s: float,
    outcome: Outcome = Outcome.OK,
    reason: str = "",
) -> LoadReport:
    """The report of what was counted (in one process, or merged from many)."""
    elapsed = max(elapsed_s, 1e-9)
    return LoadReport(
        records_read=counts.records_read + counts.skipped_on_resume,
        items_written=counts.items_written,
        deletes_written=counts.deletes_written,
        rejected=counts.rejected,
        skipped_on_resume=counts.skipped_on_resume,
        requests=counts.requests,
        unprocessed_retries=counts.unprocessed_retries,
        throttled_requests=counts.throttled_requests,
        throttling_reasons=dict(counts.throttling_reasons),
        errors_retried=counts.errors_retried,
        consumed_wcu=round(counts.consumed_wcu, 3),
        estimated_wcu=round(counts.estimated_wcu, 3),
        elapsed_s=round(elapsed, 3),
        items_per_second=round(counts.written / elapsed, 1),
        latency_ms={
            "p50": round(latency.quantile(0.5), 2),
            "p99": round(latency.quantile(0.99), 2),
            "max": round(latency.max, 2),
        },
        outcome=outcome,
        reason=reason,
    )
