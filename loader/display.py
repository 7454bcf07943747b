"""What a person reads: the live progress line and the final summaries."""

from __future__ import annotations

from collections import deque
from typing import TextIO

from loader.errors import Outcome
from loader.metrics import LoadReport, Snapshot


class Progress:
    """Live progress: one rewritten line on a terminal, a plain line every 10 s otherwise.

    The ETA comes from the input read in the last `ETA_WINDOW_S` seconds after any
    resume's skipping (skipped records go by far faster than written ones), never
    from the average since the start. `finish` redraws the line from the report, so
    the last line a person sees agrees with the summary under it.
    """

    BAR = 20
    ETA_WINDOW_S = 20.0

    def __init__(self, stream: TextIO, *, dry_run: bool = False) -> None:
        self._stream = stream
        self._dry_run = dry_run
        self._tty = stream.isatty()
        self._calls = 0
        self._seen: deque[tuple[float, int]] = deque()  # (elapsed, bytes read) since skipping
        self._skipped = 0
        self._total = 0
        self._open = False  # a terminal line is drawn and not ended

    def __call__(self, snap: Snapshot, total_bytes: int) -> None:
        self._calls += 1
        self._total = total_bytes
        if snap.skipped != self._skipped:
            self._skipped = snap.skipped
            self._seen.clear()
        self._seen.append((snap.elapsed_s, snap.bytes_read))
        while len(self._seen) > 2 and self._seen[0][0] < snap.elapsed_s - self.ETA_WINDOW_S:
            self._seen.popleft()
        if not self._tty and self._calls % 10:
            return
        average = snap.written / snap.elapsed_s if snap.elapsed_s else 0.0
        parts = [_duration(snap.elapsed_s)]
        if total_bytes:
            parts.append(self._bar(min(snap.bytes_read / total_bytes, 1.0)))
        if self._dry_run:
            parts.append(f"{snap.records_read:,} records checked (dry run)")
        else:
            parts.append(f"{snap.written:,} written")
        if snap.skipped and snap.records_read == snap.skipped:
            parts.append(f"skipping {snap.skipped:,} records the checkpoint says are done")
        elif self._dry_run:
            pass
        elif snap.written == 0 and snap.rejected == 0 and not snap.unavailable_s:
            parts.append("waiting for DynamoDB to take the first writes")
        else:
            parts.append(f"now {snap.rate:,.0f} items/s, average {average:,.0f}")
            parts.append(f"{snap.wcu_rate:,.0f} WCU/s")
        if snap.rejected:
            parts.append(f"{snap.rejected:,} rejected")
        if total_bytes and (eta := self._eta(total_bytes)) is not None:
            parts.append(f"ETA {_duration(eta)}")
        if snap.throttled_requests:
            state = f"throttled {snap.throttled_requests:,}"
            if snap.key_range_throttles:
                state += f" ({snap.key_range_throttles:,} by a hot key range)"
            parts.append(state)
        if snap.unavailable_s:
            parts.append(f"DynamoDB unavailable for {snap.unavailable_s:,.0f} s, waiting")
        self._write("  ".join(parts))

    def _bar(self, done: float) -> str:
        filled = int(done * self.BAR)
        return f"[{'#' * filled}{'-' * (self.BAR - filled)}] {done:6.1%}"

    def _eta(self, total_bytes: int) -> float | None:
        if len(self._seen) < 2:
            return None
        (t0, b0), (t1, b1) = self._seen[0], self._seen[-1]
        if t1 - t0 < 2 or b1 <= b0:
            return None
        return max(total_bytes - b1, 0) / ((b1 - b0) / (t1 - t0))

    def _write(self, line: str) -> None:
        if self._tty:
            self._stream.write(f"\r{line}\x1b[K")
            self._open = True
        else:
            self._stream.write(f"{line}\n")
        self._stream.flush()

    def finish(self, report: LoadReport) -> None:
        """The last line: the report's own numbers (on a terminal, or if any line was shown)."""
        if not (self._tty or self._calls >= 10):
            return
        written = report.items_written + report.deletes_written
        parts = [_duration(report.elapsed_s)]
        if self._total and not report.outcome.stopped_early:
            parts.append(self._bar(1.0))
        parts.append(f"{written:,} written, average {report.items_per_second:,.0f} items/s")
        if report.rejected:
            parts.append(f"{report.rejected:,} rejected")
        parts.append(report.ending)
        self._write("  ".join(parts))
        self.close()

    def close(self) -> None:
        """End the terminal line, if one is drawn."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False


def _reasons(reasons: dict[str, int]) -> str:
    """ThrottlingReasons, most frequent first: "TableWriteKeyRangeThroughputExceeded 40, …"."""
    ranked = sorted(reasons.items(), key=lambda pair: (-pair[1], pair[0]))
    return ", ".join(f"{reason} {count:,}" for reason, count in ranked)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}"


def summary(report: LoadReport, rejects: str | None = None) -> str:
    """The final summary a person reads; `rejects` names the rejects file."""
    lat = report.latency_ms
    lines = [
        f"records read     {report.records_read:,}",
        f"items written    {report.items_written:,}",
        f"deletes written  {report.deletes_written:,}",
        f"rejected         {report.rejected:,}"
        + (f"  (in {rejects})" if report.rejected and rejects else ""),
        *(f"  {sample}" for sample in report.first_rejects[:3]),
    ]
    if report.skipped_on_resume:
        lines.append(f"skipped (resume) {report.skipped_on_resume:,}")
    lines += [
        f"requests         {report.requests:,}  (throttled {report.throttled_requests:,}, "
        f"unprocessed items retried {report.unprocessed_retries:,}, "
        f"errors retried {report.errors_retried:,})",
        *(
            [f"throttled by     {_reasons(report.throttling_reasons)}"]
            if report.throttling_reasons
            else []
        ),
        f"WCU consumed     {report.consumed_wcu:,.1f}  (estimated {report.estimated_wcu:,.1f})",
        f"elapsed          {report.elapsed_s:,.2f} s  ({report.items_per_second:,.0f} items/s)",
        f"latency          p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms  "
        f"max {lat['max']:.1f} ms",
    ]
    if report.outcome is not Outcome.OK:
        lines.append(f"outcome          {report.ending}")
    return "\n".join(lines)


def dry_run_summary(report: LoadReport, price_per_million: float) -> str:
    """What a load would do and cost; nothing was written."""
    writes = report.records_read - report.rejected - report.skipped_on_resume
    calls = max(report.requests, 1)
    cost = report.estimated_wcu / 1e6 * price_per_million
    return "\n".join(
        [
            "dry run: nothing was written",
            f"records read       {report.records_read:,}",
            f"would write        {writes:,}",
            f"rejected           {report.rejected:,}",
            f"WCU (estimated)    {report.estimated_wcu:,.0f}",
            f"API calls          {report.requests:,} BatchWriteItem "
            f"(vs {writes:,} PutItem: {writes / calls:,.1f}x fewer)",
            f"on-demand cost     ${cost:,.4f} at ${price_per_million}/million WRU",
        ]
    )
