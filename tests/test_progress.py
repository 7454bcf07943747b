"""The progress line and the summary say what the table is doing: how many requests were
throttled, and which of them DynamoDB blamed on a hot key range."""

from __future__ import annotations

import io

from loader.display import Progress, summary
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
    assert line_of(snapshot(throttled_requests=120)).rstrip().endswith("300 WCU/s  throttled 120")
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


def test_the_current_rate_and_the_job_s_average_are_labelled_apart() -> None:
    line = line_of(snapshot(elapsed_s=10.0, written=5000, rate=800.0))
    assert line.startswith("0:00:10  5,000 written  now 800 items/s, average 500")


def test_before_the_first_write_the_line_says_what_it_waits_for() -> None:
    line = line_of(snapshot(written=0, rate=0.0, wcu_rate=0.0))
    assert "waiting for DynamoDB to take the first writes" in line
    assert "items/s" not in line


def test_the_eta_after_a_resume_comes_from_the_pace_of_writing_not_of_skipping() -> None:
    # 1 GB input; a resume skips the first 420 MB in one second, then reads 10 MB/s.
    stream = io.StringIO()
    progress = Progress(stream)
    total = 1_000_000_000
    progress(snapshot(elapsed_s=1.0, bytes_read=420_000_000, skipped=50_000), total)
    for second in range(2, 32):
        read = 420_000_000 + (second - 1) * 10_000_000
        progress(snapshot(elapsed_s=float(second), bytes_read=read, skipped=60_000), total)
    last = stream.getvalue().splitlines()[-1]  # at 30 s: 710 MB read, 290 MB to go
    assert last.startswith("0:00:30  [##############------]  71.0%"), last
    assert "ETA 0:00:29" in last  # from the average since the start it would say 0:00:12


def test_the_last_line_is_the_report_s_own_numbers() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    for _ in range(10):
        progress(snapshot(written=283_600, rate=6575.0), 1000)
    metrics = Metrics(0.0)
    metrics.on_bytes(read=1000)
    report = metrics.report(53.0)
    progress.finish(report)
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("0:00:53  [####################] 100.0%  0 written, average 0 items/s")
    assert last.endswith("ok")
