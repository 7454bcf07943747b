"""The progress line and the summary say what the table is doing: how many requests were
throttled, and which of them DynamoDB blamed on a hot key range."""

from __future__ import annotations

import io

from loader.cli import Progress, summary
from loader.metrics import Metrics, Snapshot


def line_of(snap: Snapshot) -> str:
    stream = io.StringIO()  # not a terminal: a plain line every tenth call
    progress = Progress(stream)
    for _ in range(10):
        progress(snap, 0)
    return stream.getvalue()


def snapshot(**fields: float) -> Snapshot:
    values = dict(
        elapsed_s=12.0, records_read=5000, written=4000, rejected=0, consumed_wcu=4000.0,
        rate=300.0, wcu_rate=300.0, throttled_requests=0, bytes_read=0,
    )  # fmt: skip
    values.update(fields)
    return Snapshot(**values)  # type: ignore[arg-type]


def test_a_job_that_is_not_throttled_says_nothing_of_it() -> None:
    assert "throttled" not in line_of(snapshot())


def test_the_progress_line_says_how_much_was_throttled_and_by_a_hot_key_range() -> None:
    assert line_of(snapshot(throttled_requests=120)).rstrip().endswith("rejected  throttled 120")
    line = line_of(snapshot(throttled_requests=1204, key_range_throttles=1100))
    assert "throttled 1,204 (1,100 by a hot key range)" in line


def test_the_summary_names_the_throttling_reasons_most_frequent_first() -> None:
    metrics = Metrics(0.0)
    for _ in range(3):
        metrics.on_error(throttled=True, reasons=("TableWriteKeyRangeThroughputExceeded",))
    metrics.on_error(throttled=True, reasons=("TableWriteProvisionedThroughputExceeded",))
    text = summary(metrics.report(1.0))
    assert (
        "throttled by     TableWriteKeyRangeThroughputExceeded 3, "
        "TableWriteProvisionedThroughputExceeded 1"
    ) in text
    assert "throttled by" not in summary(Metrics(0.0).report(1.0))
