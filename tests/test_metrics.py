"""The events, the counters they add up to, and merging them across processes."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from loader.metrics import Counters, Events, Histogram, Metrics, Subscriber, report_of


def response(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        now=1.0, latency_s=0.01, puts=20, deletes=5, wcu=30.0, estimated=30.0, unprocessed=0
    )
    return fields | overrides


def test_every_event_reaches_every_subscriber_once() -> None:
    seen: list[str] = []

    class Recorder(Subscriber):
        def on_read(self, *, records: int) -> None:
            seen.append(f"read {records}")

        def on_rejected(self, *, records: int) -> None:
            seen.append(f"rejected {records}")

    events = Events([Recorder(), Recorder()])
    events.on_read(records=3)
    events.on_rejected(records=1)
    events.on_response(**response())  # a subscriber need not care for every event
    assert seen == ["read 3", "read 3", "rejected 1", "rejected 1"]


def test_metrics_count_what_the_events_say() -> None:
    metrics = Metrics(0.0)
    metrics.on_read(records=100)
    metrics.on_skipped(records=40)
    metrics.on_response(**response())
    metrics.on_response(**response(puts=10, deletes=0, unprocessed=15))
    metrics.on_error(throttled=True)
    metrics.on_error(throttled=False)
    metrics.on_rejected(records=2)
    metrics.on_rejected(records=1)
    assert metrics.counters() == Counters(
        records_read=100,
        items_written=30,
        deletes_written=5,
        rejected=3,
        skipped_on_resume=40,
        requests=4,
        unprocessed_retries=15,
        throttled_requests=2,  # one refused whole, one with UnprocessedItems
        errors_retried=1,
        consumed_wcu=60.0,
        estimated_wcu=60.0,
    )


def test_counters_add_field_by_field() -> None:
    a = Counters(records_read=3, rejected=1, consumed_wcu=1.5, throttling_reasons=(("K", 2),))
    b = Counters(records_read=4, items_written=7, consumed_wcu=2.0, key_range_throttles=1)
    c = Counters(throttling_reasons=(("K", 1), ("T", 5)))
    total = a + b + c
    for field in dataclasses.fields(Counters):
        if field.name != "throttling_reasons":
            summed = sum(getattr(one, field.name) for one in (a, b, c))
            assert getattr(total, field.name) == summed
    # Reasons from many writer processes: counted per reason, not listed per process.
    assert total.throttling_reasons == (("K", 3), ("T", 5))


def test_throttling_reasons_are_counted_per_request_and_a_hot_key_range_apart() -> None:
    metrics = Metrics(0.0)
    hot = "TableWriteKeyRangeThroughputExceeded"
    metrics.on_error(throttled=True, reasons=(hot,))
    metrics.on_error(throttled=True, reasons=(hot, "IndexWriteKeyRangeThroughputExceeded"))
    metrics.on_error(throttled=True, reasons=(hot, "TableWriteProvisionedThroughputExceeded"))
    metrics.on_error(throttled=True)  # no reasons given
    counts = metrics.counters()
    assert counts.throttled_requests == 4
    assert counts.key_range_throttles == 2  # the third was the table's limit too
    report = metrics.report(1.0)
    assert report.throttling_reasons == {
        hot: 3,
        "IndexWriteKeyRangeThroughputExceeded": 1,
        "TableWriteProvisionedThroughputExceeded": 1,
    }
    assert report.to_json()["throttling_reasons"] == report.throttling_reasons
    assert metrics.snapshot(1.0).key_range_throttles == 2


def test_merged_histograms_give_the_percentiles_of_all_samples_not_an_average() -> None:
    rng = random.Random(7)
    fast = [rng.uniform(1, 5) for _ in range(900)]
    slow = [rng.uniform(200, 400) for _ in range(100)]
    whole, one, other = Histogram(), Histogram(), Histogram()
    for value in fast + slow:
        whole.add(value)
    for value in fast:
        one.add(value)
    for value in slow:
        other.add(value)
    one.merge(other)
    assert (one.count, one.max) == (whole.count, whole.max)
    for q in (0.5, 0.9, 0.95, 0.99):
        assert one.quantile(q) == whole.quantile(q)
    assert one.quantile(0.99) > 200  # averaging two p99s would say ~ (5 + 400) / 2


def test_a_report_of_merged_counts_is_the_report_of_one_process_that_counted_them_all() -> None:
    together = Metrics(0.0)
    parts = [Metrics(0.0), Metrics(0.0)]
    for i in range(10):
        fields = response(latency_s=0.001 * (i + 1), puts=i)
        together.on_response(**fields)
        parts[i % 2].on_response(**fields)
    latency = Histogram()
    for part in parts:
        latency.merge(part.latency)
    merged = report_of(parts[0].counters() + parts[1].counters(), latency, 2.0)
    assert merged == together.report(2.0)
