"""On a throttled table, how much of the capacity does each client actually use, and how
many requests does it waste on throttling?

    python -m benchmarks.throttled [--seconds 20] [--budget 1000] [--partitions 4]

DynamoDB Local behind the project's fault proxy (tests/faultproxy.py), which admits at
most `--budget` WCU/s for the table and as much for each of `--partitions` partitions,
so the table budget binds. Items are small catalog items (~270 bytes, 1 WCU each, so
WCU/s = items/s), enough that nobody can finish inside the time box. Contenders, each a
child process on a fresh table, stopped (SIGTERM) after `--seconds`:

- ddb-loader CLI, defaults (adaptive rate control, full-jitter backoff);
- boto3 `Table.batch_writer()` with botocore's standard retry mode;
- ddb-loader's library API with backoff and rate control off (`benchmarks.loader_unpaced`).

Measured by the proxy: WCU admitted in each second; the share of the budget used after
the first 5 s; throttled requests (refused whole, or answered with budget-refused
`UnprocessedItems`); and those wasted requests per item written.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import common
from tests.faultproxy import FaultConfig, FaultProxy

NAME = "throttled"
SETTLE_S = 5.0  # the first seconds (start-up, bucket burst) are left out of the share


class CountingProxy(FaultProxy):
    """The fault proxy, also counting requests it admitted only in part (a 200 whose
    `UnprocessedItems` holds budget-refused items): throttling a client has to handle.
    It logs when each write request came and whether it was throttled, to count those
    of the settled part of a run."""

    partial_requests = 0

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.log: list[tuple[float, bool]] = []  # (seconds since reset, throttled)

    async def _apply_budget(
        self, op: str, body: bytes, headers: Mapping[str, str], cfg: FaultConfig
    ) -> Any:
        outcome = await super()._apply_budget(op, body, headers, cfg)
        partial = isinstance(outcome, tuple) and bool(outcome[1])
        with self._lock:
            self.partial_requests += partial
            if op == "BatchWriteItem":
                whole = not isinstance(outcome, tuple)
                self.log.append((time.monotonic() - self._t0, partial or whole))
        return outcome

    def reset_stats(self) -> None:
        super().reset_stats()
        with self._lock:
            self.partial_requests = 0
            self.log = []


@dataclass(frozen=True, slots=True)
class Contender:
    label: str
    table: str
    command: tuple[str, ...]  # after the python executable; {url} {table} {source} filled in


CONTENDERS = [
    Contender(
        "ddb-loader (adaptive)",
        "thr-loader",
        ("-m", "loader", "load", "{source}", "--table", "{table}", "--endpoint-url", "{url}",
         "--no-progress"),
    ),
    Contender(
        "boto3 batch_writer (standard retries)",
        "thr-boto3",
        ("-m", "benchmarks.peer_boto3", "--endpoint", "{url}", "--table", "{table}",
         "--source", "{source}", "--mode", "batch-writer", "--retry-mode", "standard"),
    ),
    Contender(
        "ddb-loader, no backoff/rate control",
        "thr-unpaced",
        ("-m", "benchmarks.loader_unpaced", "--endpoint", "{url}", "--table", "{table}",
         "--source", "{source}"),
    ),
]  # fmt: skip


def run_one(
    who: Contender, ddb_url: str, proxy: CountingProxy, source: Path, opts: argparse.Namespace
) -> dict[str, Any]:
    """Run one contender for `opts.seconds` against a fresh table; the proxy's view of it."""
    print(f"{who.label} ({opts.seconds:.0f} s) ...", flush=True)
    table = common.create_table(ddb_url, who.table, gsi=False)
    # A new config object resets the proxy's token buckets and random generator.
    proxy.config = FaultConfig(
        table_wcu_per_s=opts.budget, partitions=opts.partitions, partition_wcu_per_s=opts.budget
    )
    proxy.reset_stats()
    fields = {"url": proxy.url, "table": table, "source": str(source)}
    command = [common.PY, *(part.format(**fields) for part in who.command)]
    snapshot: list[tuple[Any, int, list[tuple[float, bool]]]] = []

    def freeze() -> None:
        snapshot.append((proxy.stats(), proxy.partial_requests, list(proxy.log)))

    child = common.run_child(
        command, timeout_s=opts.seconds + 20, stop_after_s=opts.seconds, on_stop=freeze
    )
    if not snapshot:  # it ended on its own before the time box
        freeze()
    common.delete_table(ddb_url, table)
    return summarize(who.label, child, *snapshot[0], opts)


def summarize(
    label: str,
    child: common.ChildResult,
    stats: Any,
    partial: int,
    log: list[tuple[float, bool]],
    opts: argparse.Namespace,
) -> dict[str, Any]:
    seconds = int(opts.seconds)
    per_second = [(t, w) for t, w in stats.admitted_per_second if t < seconds]
    per_second += [(float(t), 0.0) for t in range(len(per_second), seconds)]
    steady = [w for t, w in per_second if t >= SETTLE_S]
    share = sum(steady) / (opts.budget * len(steady)) if steady else 0.0
    written = stats.admitted_wcu  # 1 WCU per item
    throttled = stats.throttled_requests + partial
    # Settled, as issue 3 counts it: from 5 s after the table first refused (before, it
    # takes whatever comes until its stored burst is spent: there is nothing to find).
    first = next((t for t, refused in log if refused), None)
    settled = [refused for t, refused in log if first is not None and t >= first + SETTLE_S]
    after_5s = [refused for t, refused in log if t >= SETTLE_S]  # the run's first 5 s out
    error = None
    if not child.stopped and child.returncode != 0:
        error = f"exited with {child.returncode} after {child.wall_s:.1f} s: {child.tail(3)}"
        print(f"  {label}: {error}", flush=True)
    return {
        "tool": label,
        "wcu_admitted": round(written, 1),
        "budget_share_after_5s": round(share, 3),
        "requests": stats.requests,
        "throttled_requests": throttled,
        "throttled_whole": stats.throttled_requests,
        "throttled_partial": partial,
        "throttled_items": stats.throttled_items,
        "settled_requests": len(settled),
        "settled_throttled": sum(settled),
        "settled_throttled_share": round(sum(settled) / len(settled), 3) if settled else None,
        "after_5s_requests": len(after_5s),
        "after_5s_throttled": sum(after_5s),
        "wasted_requests_per_item": round(throttled / written, 3) if written else None,
        "requests_per_item": round(stats.requests / written, 3) if written else None,
        "wcu_per_second": per_second,
        "finished_early": not child.stopped,
        "error": error,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--seconds", type=float, default=20.0, help="time box per contender")
    args.add_argument("--budget", type=float, default=1000.0, help="table WCU/s")
    args.add_argument("--partitions", type=int, default=4)
    args.add_argument(
        "--items", type=int, default=None, help="default: 1.25 x seconds x budget (never finishes)"
    )
    opts = args.parse_args(argv)
    if opts.seconds <= SETTLE_S:
        args.error(f"--seconds must be more than {SETTLE_S:.0f}")
    common.begin(NAME)
    items = opts.items or int(opts.seconds * opts.budget * 1.25)
    source = common.catalog_file(items, small=True)
    with common.dynamodb_local() as ddb_url:
        proxy = CountingProxy(ddb_url)
        proxy.start()
        try:
            results = [run_one(who, ddb_url, proxy, source, opts) for who in CONTENDERS]
        finally:
            proxy.stop()
    report(results, items, opts)
    return 0


def report(results: list[dict[str, Any]], items: int, opts: argparse.Namespace) -> None:
    print()
    common.print_table(
        [
            "tool",
            "WCU written",
            "budget used (after 5 s)",
            "requests",
            "throttled requests",
            "throttled after 5 s",
            "settled: throttled",
            "wasted req/item",
        ],
        [
            [
                r["tool"],
                r["wcu_admitted"],
                f"{r['budget_share_after_5s']:.1%}",
                r["requests"],
                r["throttled_requests"],
                f"{r['after_5s_throttled']}/{r['after_5s_requests']}",
                f"{r['settled_throttled']}/{r['settled_requests']}"
                + (f" ({r['settled_throttled_share']:.1%})" if r["settled_requests"] else ""),
                r["wasted_requests_per_item"] if r["wasted_requests_per_item"] is not None else "-",
            ]
            for r in results
        ],
    )
    print(
        f"budget {opts.budget:,.0f} WCU/s (table), {opts.partitions} partitions at "
        f"{opts.budget:,.0f} WCU/s each; {items:,} items of 1 WCU; {opts.seconds:.0f} s each.\n"
        "Budget used can pass 100% by up to one second of budget: the proxy's token bucket "
        "starts full and refills while a client holds back.\n"
        "Throttled after 5 s: requests from the run's 5th second on; settled: from 5 s after "
        "the table first refused one."
    )
    for r in results:
        if r["finished_early"]:
            print(f"note: {r['tool']} ended before the time box: its share is understated")
    common.save_json(
        NAME,
        {
            "seconds": opts.seconds,
            "budget_wcu_per_s": opts.budget,
            "partitions": opts.partitions,
            "items_available": items,
            "item": "small catalog item, ~270 bytes, 1 WCU",
            "contenders": results,
        },
    )
    common.save_line_chart(
        NAME,
        {r["tool"]: r["wcu_per_second"] for r in results},
        xlabel="seconds since start",
        ylabel="WCU/s admitted (= items/s, 1 WCU items)",
        title=f"Throttled table ({opts.budget:,.0f} WCU/s): capacity used over time",
        hline=(opts.budget, "table budget"),
    )


if __name__ == "__main__":
    sys.exit(main())
