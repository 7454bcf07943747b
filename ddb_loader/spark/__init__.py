"""ddb-loader on Spark (AWS Glue, EMR): every task writes its partition through the
loader's pipeline, and the fleet shares one table's capacity.

Spark 3.5 and 4 (Glue 5 and 6, EMR 7 and 8)::

    import ddb_loader.spark
    report = ddb_loader.spark.write(df, table="products", region="eu-west-1")

Spark 4 also has the Data Source, found by name with no registration step (package
`pyspark_ddb_loader`), or after `ddb_loader.spark.register(spark)`, which adds the
driver's lease service::

    df.write.format("ddb-loader").option("table", "products").mode("append").save()

The fleet's capacity: with `write` or after `register`, a lease service in the driver
(`loader.lease`) paces the whole fleet at the table's delivery rate (or `max_wcu`)
and grants each running task its share; tasks start with an empty bucket. Without it
(the Data Source found by name), each task paces itself by what the table accepts,
and `maxWcu`, which needs a fleet-wide count, is refused.

Order: within a partition, rows are written in their order (last write wins). Two
rows for one key in different partitions have no order; `key_order=` (a column)
repartitions by the table's partition key and sorts each partition by that column,
so the last of them by that column wins.

A failed task is retried by Spark and rewrites its partition: puts and deletes are
idempotent, and the report counts the attempt that succeeded.
"""

from __future__ import annotations

import atexit
import pickle
import sys
import threading
import time
import uuid
from typing import Any

from ddb_loader import _config
from ddb_loader.spark._task import Settings, TaskResult, merge, run_partition
from loader.config import LoadConfig
from loader.errors import ConfigError
from loader.lease import LeaseService
from loader.metrics import LoadReport
from loader.preflight import connect
from loader.runtime import run

_lock = threading.Lock()
_services: dict[str, LeaseService] = {}


def write(
    df: Any,
    *,
    table: str,
    max_wcu: float | None = None,
    rejects: str | None = None,
    key_order: str | None = None,
    lease: bool = True,
    lease_host: str | None = None,
    tasks: list[TaskResult] | None = None,
    **options: Any,
) -> LoadReport:
    """Write DataFrame `df`'s rows to `table` and return the tasks' merged report.

    `rejects` is the prefix of the tasks' rejects files (`<prefix>-part00003-attempt0.jsonl`
    each, where the task ran; default `ddb-loader-rejects-<UTC>` in its working folder);
    the files with rejects are named on standard error. `max_wcu` bounds the whole
    fleet. `key_order`: see the module. `lease=False` lets each task pace itself.
    `lease_host` is the address the executors reach the driver at (default: 127.0.0.1
    in local mode, else `spark.driver.host`). `options` are `LoadConfig`'s fields
    (`endpoint_url`, `region`, `profile`, `workers`, ...). `tasks`, if given, gets
    each task's own result (the benchmarks' per-task rates).

    Raises:
        ConfigError: a bad option, or the table is missing, before any write.
        LoaderError: a task failed after Spark's retries (its error says why).
    """
    if max_wcu is not None and not lease:
        raise ConfigError("max_wcu bounds the whole fleet: it needs lease=True.")
    config = prepare(table, rejects, {**options, "max_wcu": max_wcu})
    key = run(_check(config), tune_gc=False)
    if key_order is not None:
        df = df.repartition(key).sortWithinPartitions(key_order)
    service = _service(lease_host or _driver_host(df.sparkSession)) if lease else None
    settings = Settings(
        config=config,
        job=uuid.uuid4().hex,
        lease=service.address if service else None,
        token=service.token if service else "",
    )
    started = time.monotonic()
    out = df.mapInArrow(_mapper(settings), "result binary").collect()
    results: list[TaskResult] = [pickle.loads(row.result) for row in out]
    report = merge(results, time.monotonic() - started)
    tell_rejects(report, results)
    if tasks is not None:
        tasks.extend(results)
    return report


def register(spark: Any, *, lease_host: str | None = None) -> None:
    """Register the `ddb-loader` Data Source (Spark 4) with the driver's lease service,
    so that the tasks of each write share the table's capacity (bounded by the write's
    `maxWcu` option, if given). `lease_host`: as `write`'s."""
    from ddb_loader.spark.source import leased_source

    service = _service(lease_host or _driver_host(spark))
    spark.dataSource.register(leased_source(service.address, service.token))


def prepare(table: str, rejects: str | None, options: dict[str, Any]) -> LoadConfig:
    """The tasks' configuration, checked in the driver: one sentence for a bad one."""
    if not table:
        raise ConfigError("Name the table to write to: table=...")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return _config((), table, {**options, "rejects": rejects or f"ddb-loader-rejects-{stamp}"})


async def _check(config: LoadConfig) -> str:
    """The table is there and the credentials work; its partition key attribute."""
    async with connect(config, None, records=True) as (_, _, schemas):
        return schemas[config.table or ""].hash_name


def _mapper(settings: Settings) -> Any:
    def write_partition(batches: Any) -> Any:
        import pyarrow as pa
        from pyspark import TaskContext

        context = TaskContext.get()
        assert context is not None  # in a task
        partition, attempt = context.partitionId(), context.attemptNumber()
        result = run_partition(batches, settings, partition, attempt)
        yield pa.RecordBatch.from_pydict({"result": [result.dumps()]})

    return write_partition


def tell_rejects(report: LoadReport, results: list[TaskResult]) -> None:
    """Name the tasks' rejects files, so none is lost on an executor's disk."""
    files = sorted(r.rejects_file for r in results if r.rejects_file)
    if files:
        print(
            f"ddb-loader: {report.rejected:,} records rejected, in: " + ", ".join(files),
            file=sys.stderr,
        )


def _driver_host(spark: Any) -> str:
    if spark.sparkContext.master.startswith("local"):
        return "127.0.0.1"
    return str(spark.conf.get("spark.driver.host"))


def _service(host: str) -> LeaseService:
    """One lease service an address, for the driver's life (each write its own shares)."""
    with _lock:
        service = _services.get(host)
        if service is None:
            service = _services[host] = LeaseService(host=host)
            service.start()
            atexit.register(service.stop)
        return service


__all__ = ["register", "write"]
