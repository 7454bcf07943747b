"""The driver's view of a Spark write: the tasks' reports merged as one job's."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
from pyspark.sql import Row

from ddb_loader.spark._task import TaskResult, merge, next_chunk, rejects_file
from loader.metrics import Counters, Histogram


def task(partition: int, written: int, latencies_ms: list[float]) -> TaskResult:
    latency = Histogram()
    for value in latencies_ms:
        latency.add(value)
    counters = Counters(records_read=written, items_written=written, requests=len(latencies_ms))
    return TaskResult(partition, 0, counters, latency, None)


def test_counts_are_summed_and_latency_histograms_merged_not_their_percentiles_averaged() -> None:
    quick = task(0, 990, [10.0] * 99)
    slow = task(1, 10, [1000.0])
    report = merge([quick, slow], elapsed_s=10.0)
    assert (report.records_read, report.items_written, report.requests) == (1000, 1000, 100)
    assert report.items_per_second == 100.0
    # 99 of the 100 requests took 10 ms: so does the p99 of the whole job. Averaged,
    # the tasks' p99s would say 505 ms.
    assert 9.5 <= report.latency_ms["p99"] <= 10.5
    assert report.latency_ms["max"] == 1000.0


def test_each_attempt_of_each_partition_has_a_rejects_file_of_its_own() -> None:
    names = {rejects_file("/r/load", p, a) for p in (0, 1, 12) for a in (0, 1)}
    assert len(names) == 6
    assert rejects_file("/r/load", 12, 1) == "/r/load-part00012-attempt1.jsonl"


def test_arrow_batches_and_spark_rows_become_the_same_records() -> None:
    # Spark 4.1's Data Source writer and mapInArrow hand over Arrow batches; Spark 4.0's
    # writer hands over Rows. Either way: nulls left out, doubles as printed.
    batch = pa.RecordBatch.from_pydict({"PK": ["a", "b"], "price": [9.99, None]})
    spark_rows = iter([Row(PK="a", price=9.99), Row(PK="b", price=None)])
    expected = [{"PK": "a", "price": Decimal("9.99")}, {"PK": "b"}]
    assert next_chunk(iter([batch])) == expected
    assert next_chunk(spark_rows) == expected
    assert next_chunk(spark_rows) == []
