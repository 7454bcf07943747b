"""Spark tasks sharing one table's capacity: the lease service against a static split.

    python -m benchmarks.spark_shared [--budget 2000] [--seconds 20] [--partitions 8]

pyspark in local[2] (2 slots) writes `--partitions` partitions of small catalog items
(1 WCU each) to DynamoDB Local behind the project's fault proxy, which admits at most
`--budget` WCU/s for the table and throttles the rest. There are budget × seconds items,
so a client that used the whole budget would take `--seconds`. Contenders, each on a
fresh table, in one run:

- `ddb_loader.spark.write` (the driver's lease service at the table's delivery rate);
- the same with `max_wcu` = the budget (the service's fixed rate);
- a static split as the emr-dynamodb-connector makes it: each task a ddb-loader job
  with `max_wcu` = budget ÷ partitions (its bucket, as the CLI's, starts with a second
  of burst);
- the static split by slots: `max_wcu` = budget ÷ 2.

Measured at the proxy, per second: WCU offered (admitted + throttled) and admitted.
"used": admitted WCU / (budget × the job's span); "over": offered WCU beyond the
budget, as a share of it, over the whole job and in its worst second; "throttled":
the share of write requests refused in whole or part. Per task (from its own report):
its items/s while it ran, against a fair share (budget ÷ 2 tasks at a time): the worst
task says whether one starved. Results in benchmarks/results/spark_shared.json/.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from benchmarks import common
from tests.faultproxy import FaultConfig, FaultProxy
from tests.spark_local import local_session

NAME = "spark_shared"
SLOTS = 2


class OfferedProxy(FaultProxy):
    """The fault proxy, logging each write request's items: offered and admitted."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.log: list[tuple[float, int, int]] = []  # (seconds since reset, offered, admitted)

    async def _apply_budget(
        self, op: str, body: bytes, headers: Mapping[str, str], cfg: FaultConfig
    ) -> Any:
        outcome = await super()._apply_budget(op, body, headers, cfg)
        if op == "BatchWriteItem":
            offered = body.count(b'"PutRequest"')
            refused = (
                sum(len(v) for v in outcome[1].values()) if isinstance(outcome, tuple) else offered
            )
            with self._lock:
                self.log.append((time.monotonic() - self._t0, offered, offered - refused))
        return outcome

    def reset_stats(self) -> None:
        super().reset_stats()
        with self._lock:
            self.log = []


def session() -> Any:
    return local_session(
        f"local[{SLOTS}]", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "2000"}
    )


def catalog(spark: Any, rows: int, partitions: int) -> Any:
    return spark.range(0, rows, numPartitions=partitions).selectExpr(
        "concat('PRODUCT#', id) AS PK",
        "'DETAILS' AS SK",
        "concat('product ', id) AS name",
        "CAST(id % 1000 AS DECIMAL(10, 2)) + 0.99 AS price",
    )


def static(endpoint: str, table: str, max_wcu: float) -> Any:
    """Each task a ddb-loader job of its own at a fixed share: the static split."""

    def write_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        import ddb_loader
        from loader.sources.arrow import rows

        started = time.monotonic()
        report = ddb_loader.load(rows(batches), table=table, endpoint_url=endpoint, max_wcu=max_wcu)
        yield pa.RecordBatch.from_pydict(
            {
                "items": [report.items_written],
                "seconds": [time.monotonic() - started],
            }
        )

    return write_partition


def run_one(
    spark: Any, label: str, proxy: OfferedProxy, url: str, opts: argparse.Namespace
) -> dict[str, Any]:
    import ddb_loader.spark

    table = common.create_table(url, f"spark-shared-{time.monotonic_ns()}", gsi=False)
    rows = int(opts.budget * opts.seconds)
    df = catalog(spark, rows, opts.partitions).cache()
    df.count()  # made before the clock starts: the job measured is the write
    proxy.reset_stats()
    started = time.monotonic()
    print(f"  {label} ...", flush=True)
    if label.startswith("lease"):
        max_wcu = opts.budget if "max_wcu" in label else None
        results: list[Any] = []
        ddb_loader.spark.write(
            df, table=table, endpoint_url=proxy.url, max_wcu=max_wcu, tasks=results
        )
        tasks = [(r.counters.items_written, r.elapsed_s) for r in results]
    else:
        share = opts.budget / (opts.partitions if "partitions" in label else SLOTS)
        out = df.mapInArrow(static(proxy.url, table, share), "items long, seconds double").collect()
        tasks = [(row["items"], row["seconds"]) for row in out]
    span = time.monotonic() - started
    log = list(proxy.log)
    common.check_count(url, table, rows, label)
    common.delete_table(url, table)
    df.unpersist()
    return summarize(label, log, tasks, span, opts)


def summarize(
    label: str,
    log: list[tuple[float, int, int]],
    tasks: list[tuple[int, float]],
    span: float,
    opts: argparse.Namespace,
) -> dict[str, Any]:
    seconds = max(1, int(span))
    offered = [0] * (seconds + 1)
    admitted = [0] * (seconds + 1)
    for t, sent, took in log:
        offered[min(int(t), seconds)] += sent
        admitted[min(int(t), seconds)] += took
    first = next((t for t, _, _ in log), 0.0)
    last = log[-1][0] if log else span
    active = max(last - first, 1e-9)
    fair = opts.budget / SLOTS
    rates = [items / s for items, s in tasks if s > 0]
    requests = len(log)
    throttled = sum(1 for _, sent, took in log if took < sent)
    full = offered[1:-1] or offered  # whole seconds only
    return {
        "client": label,
        "items": sum(items for items, _ in tasks),
        "job_s": round(span, 2),
        "used": round(sum(admitted) / (opts.budget * active), 3),
        "over": round(max(0.0, sum(offered) / (opts.budget * active) - 1), 3),
        "worst_second_over": round(max(0.0, max(full) / opts.budget - 1), 3),
        "throttled_requests": round(throttled / requests, 3) if requests else None,
        "worst_task_of_fair": round(min(rates) / fair, 3) if rates else None,
        "best_task_of_fair": round(max(rates) / fair, 3) if rates else None,
        "offered_per_second": offered,
        "admitted_per_second": admitted,
    }


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--budget", type=float, default=2000.0, help="table WCU/s at the proxy")
    args.add_argument("--seconds", type=float, default=20.0, help="the ideal job's length")
    args.add_argument("--partitions", type=int, default=8)
    args.add_argument("--only", default="", help="run the contenders whose label has this")
    opts = args.parse_args(argv)
    common.begin(NAME)
    labels = [
        "lease (delivery rate)",
        "lease, max_wcu = budget",
        "static, budget / partitions",
        "static, budget / slots",
    ]
    spark = session()
    results = []
    try:
        with common.dynamodb_local() as url:
            common.warm_up(url, 10_000)
            proxy = OfferedProxy(url)
            proxy.config = FaultConfig(table_wcu_per_s=opts.budget)
            proxy.start()
            try:
                for label in (lb for lb in labels if opts.only in lb):
                    results.append(run_one(spark, label, proxy, url, opts))
            finally:
                proxy.stop()
    finally:
        spark.stop()
    common.print_table(
        ("client", "job s", "used", "over", "worst s over", "throttled", "worst task / fair"),
        [
            (
                r["client"],
                r["job_s"],
                f"{r['used']:.0%}",
                f"{r['over']:.0%}",
                f"{r['worst_second_over']:.0%}",
                f"{r['throttled_requests']:.0%}",
                f"{r['worst_task_of_fair']:.2f}",
            )
            for r in results
        ],
    )
    common.save_json(
        NAME,
        {
            "budget_wcu": opts.budget,
            "seconds": opts.seconds,
            "partitions": opts.partitions,
            "slots": SLOTS,
            "results": results,
        },
    )
    chart(results, opts)
    return 0


def chart(results: list[dict[str, Any]], opts: argparse.Namespace) -> None:
    plt = common.pyplot()
    fig, (offered, admitted) = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for r in results:
        offered.plot(r["offered_per_second"], marker=".", label=r["client"])
        admitted.plot(r["admitted_per_second"], marker=".", label=r["client"])
    for ax, title in ((offered, "WCU/s offered"), (admitted, "WCU/s admitted")):
        ax.axhline(opts.budget, color="grey", linestyle="--", label="budget")
        ax.set_xlabel("seconds since the write started")
        ax.set_title(f"{title}: {opts.partitions} partitions on {SLOTS} slots", fontsize=10)
        ax.grid(alpha=0.3)
    admitted.legend(fontsize=8)
    common.save_figure(plt, fig, NAME)


if __name__ == "__main__":
    sys.exit(main())
