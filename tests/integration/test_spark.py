"""ddb-loader inside Spark tasks (pyspark in local[2]) against DynamoDB Local: both APIs,
read back from the table, every value exact, rejects per task, a retried task counted
once, and the fleet never over the bound it was given."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

import ddb_loader.spark
from ddb_loader import ConfigError, LoaderError
from tests.conftest import TableFactory, assert_table_equals, stored
from tests.ddb_local import DynamoDBLocal
from tests.spark_local import local_session

pytestmark = pytest.mark.integration

ROWS = 3000
DIGITS = "1234567890123456789012345.6789012345678"  # 38 digits: a float would lose them


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = local_session(
        "local[2,3]",  # 2 slots; a failed task is tried 3 times
        **{
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.execution.arrow.maxRecordsPerBatch": "500",
        },
    )
    yield session
    session.stop()


def catalog(spark: SparkSession, rows: int = ROWS, partitions: int = 4) -> DataFrame:
    """Rows with every kind of value a catalog has: exact decimals, doubles, nulls,
    nested structs, maps, arrays, bytes and timestamps."""
    return spark.range(0, rows, numPartitions=partitions).selectExpr(
        "concat('p#', id) AS PK",
        "'v1' AS SK",
        f"CAST('{DIGITS}' AS DECIMAL(38, 13)) AS exact",
        "id AS n",
        "CAST(id AS DOUBLE) / 4 AS ratio",
        "IF(id % 7 = 0, NULL, concat('name ', id)) AS name",
        "named_struct('w', CAST(id AS INT), 'tags', array('a', 'b')) AS dims",
        "map('eu', CAST(id AS DECIMAL(10, 2)) + 0.5) AS prices",
        "CAST(concat('b', id) AS BINARY) AS raw",
        "TIMESTAMP '2026-12-04 10:00:00' AS updated",
    )


def expected(rows: int = ROWS) -> dict[tuple[Any, ...], dict[str, Any]]:
    items = {}
    for i in range(rows):
        item: dict[str, Any] = {
            "PK": f"p#{i}",
            "SK": "v1",
            "exact": Decimal(DIGITS),
            "n": Decimal(i),
            "ratio": Decimal(repr(i / 4)),
            "dims": {"w": Decimal(i), "tags": ["a", "b"]},
            "prices": {"eu": Decimal(i) + Decimal("0.5")},
            "raw": f"b{i}".encode(),
            "updated": "2026-12-04T10:00:00+00:00",  # in the session's time zone
        }
        if i % 7:
            item["name"] = f"name {i}"
        items[(item["PK"], "v1")] = item
    return items


def as_read(table: dict[tuple[Any, ...], dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """boto3 reads B back as Binary: compare its bytes."""
    return {
        k: {n: bytes(v) if n == "raw" else v for n, v in item.items()} for k, item in table.items()
    }


def save(df: DataFrame, table: str, url: str, **options: str) -> None:
    """`df.write.format("ddb-loader")` to `table` at `url`, with `options`, appending."""
    writer = df.write.format("ddb-loader").option("table", table).option("endpointUrl", url)
    for key, value in options.items():
        writer = writer.option(key, value)
    writer.mode("append").save()


def test_the_helper_writes_every_row_exactly_and_merges_the_tasks_reports(
    spark: SparkSession, ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table()
    report = ddb_loader.spark.write(catalog(spark), table=table, endpoint_url=ddb_local.url)
    assert_table_equals(as_read(stored(ddb_local.url, table)), expected())
    assert (report.records_read, report.items_written, report.rejected) == (ROWS, ROWS, 0)
    assert report.consumed_wcu == ROWS  # every item is under 1 KB
    assert report.requests >= ROWS / 25
    assert 0 < report.latency_ms["p50"] <= report.latency_ms["p99"] <= report.latency_ms["max"]


def test_the_data_source_is_found_by_name_and_writes_its_report(
    spark: SparkSession, ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table()
    report = tmp_path / "report.json"
    save(catalog(spark), table, ddb_local.url, report=str(report))
    assert_table_equals(as_read(stored(ddb_local.url, table)), expected())
    written = json.loads(report.read_text())
    assert (written["records_read"], written["items_written"]) == (ROWS, ROWS)


def test_without_the_lease_service_the_data_source_refuses_max_wcu(
    spark: SparkSession, ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table()
    with pytest.raises(Exception, match="maxWcu bounds the whole fleet"):
        save(catalog(spark, rows=10), table, ddb_local.url, maxWcu="100")
    assert stored(ddb_local.url, table) == {}


def test_registered_the_fleet_shares_max_wcu_and_never_goes_over_it(
    spark: SparkSession, ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    session = spark.newSession()
    ddb_loader.spark.register(session)
    table = make_table()
    rows, bound = 4000, 1000
    started = time.monotonic()
    save(catalog(session, rows=rows, partitions=8), table, ddb_local.url, maxWcu=str(bound))
    elapsed = time.monotonic() - started
    assert_table_equals(as_read(stored(ddb_local.url, table)), expected(rows))
    # Every task's bucket starts empty and the grants never add up to more than the
    # bound, so 4,000 WCU take at least 4 s less one burst of 0.2 s of the bound.
    assert elapsed >= rows / bound - 0.2


def test_each_task_has_its_own_rejects_file_naming_partition_and_row(
    spark: SparkSession, ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table()
    df = spark.range(0, 200, numPartitions=2).selectExpr(
        "concat('p#', id) AS PK",
        "'v1' AS SK",
        "IF(id % 50 = 3, repeat('x', 410000), 'ok') AS text",  # over 400 KB: refused
    )
    prefix = tmp_path / "rejects"
    report = ddb_loader.spark.write(
        df, table=table, endpoint_url=ddb_local.url, rejects=str(prefix)
    )
    assert report.rejected == 4
    assert len(stored(ddb_local.url, table)) == 196
    lines = [
        json.loads(line)
        for path in sorted(tmp_path.glob("rejects-part*-attempt0.jsonl"))
        for line in path.read_text().splitlines()
    ]
    # Partition 0 holds ids 0-99 and partition 1 ids 100-199, rows numbered from 1.
    assert sorted((r["source"], r["line"]) for r in lines) == [
        ("partition 0", 4),
        ("partition 0", 54),
        ("partition 1", 4),
        ("partition 1", 54),
    ]


def fail_once(batches: Iterator[Any]) -> Iterator[Any]:
    """Partition 1's first attempt fails after its first batch has gone through."""
    from pyspark import TaskContext

    context = TaskContext.get()
    for n, batch in enumerate(batches):
        if n == 1 and context.partitionId() == 1 and context.attemptNumber() == 0:
            raise RuntimeError("a lost executor")
        yield batch


def test_a_task_spark_retries_rewrites_its_partition_and_is_counted_once(
    spark: SparkSession, ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table()
    df = catalog(spark)
    flaky = df.mapInArrow(fail_once, df.schema)
    report = ddb_loader.spark.write(flaky, table=table, endpoint_url=ddb_local.url)
    assert_table_equals(as_read(stored(ddb_local.url, table)), expected())
    assert (report.records_read, report.items_written) == (ROWS, ROWS)


def test_key_order_makes_the_last_write_of_a_key_win_across_partitions(
    spark: SparkSession, ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table()
    # Five versions of each of 100 keys, spread over four partitions in no order.
    df = spark.range(0, 500, numPartitions=4).selectExpr(
        "concat('p#', id % 100) AS PK", "'v1' AS SK", "CAST(499 - id AS INT) AS version"
    )
    ddb_loader.spark.write(df, table=table, endpoint_url=ddb_local.url, key_order="version")
    versions = {pk: item["version"] for (pk, _), item in stored(ddb_local.url, table).items()}
    assert versions == {f"p#{k}": Decimal(499 - k) for k in range(100)}


def test_a_missing_table_is_one_sentence_before_any_task_runs(
    spark: SparkSession, ddb_local: DynamoDBLocal
) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ddb_loader.spark.write(
            catalog(spark, rows=10), table="no-such-table", endpoint_url=ddb_local.url
        )
    with pytest.raises(ConfigError, match="Unknown option 'wcu'"):
        ddb_loader.spark.write(catalog(spark, rows=10), table="t", wcu=5)
    assert issubclass(ConfigError, LoaderError)
