"""How does ddb-loader's items/s compare with what people use instead — a `PutItem`
loop, boto3's `batch_writer`, aioboto3's `batch_writer` (1 and 16 concurrent), the AWS
SDK for JavaScript v3 (16 batches in flight) — and with the server's own ceiling, on
the same data and the same DynamoDB Local, in one run?

    python -m benchmarks.peers [--items 50000] [--put-time-limit 30] [--warmup 5000]

The table is PK/SK only (no GSI), fresh for each contender, and dropped after a Scan
COUNT has checked that every item arrived. Every contender runs as a child process and
times its own reading + writing (interpreter start and client creation excluded). The
`PutItem` loop is time-boxed: its items/s is measured over the box and extrapolated.
The ceiling pre-builds and pre-signs every request before the clock starts, so it is
the server's speed, not a client's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import common
from loader.config import DEFAULT_WORKERS

NAME = "peers"
LOADER = f"ddb-loader (default, {DEFAULT_WORKERS} workers)"


@dataclass(frozen=True, slots=True)
class Contender:
    label: str
    table: str
    module: str  # benchmarks.<module> peer, or "loader" for the ddb-loader CLI
    args: tuple[str, ...] = ()
    time_boxed: bool = False


def contenders(put_time_limit: float) -> list[Contender]:
    everyone = [
        Contender(
            "boto3 put_item loop",
            "put-loop",
            "peer_boto3",
            ("--mode", "put", "--time-limit", str(put_time_limit)),
            time_boxed=True,
        ),
        Contender("boto3 batch_writer", "boto3-bw", "peer_boto3", ("--mode", "batch-writer")),
        Contender("aioboto3 batch_writer x1", "aioboto3-1", "peer_aioboto3", ("--writers", "1")),
        Contender("aioboto3 batch_writer x16", "aioboto3-16", "peer_aioboto3", ("--writers", "16")),
        Contender("AWS SDK for JS v3 x16", "js-16", "peer_js", ("--in-flight", "16")),
        # The same work as ddb-loader, whose report needs what DynamoDB consumed: on
        # DynamoDB Local, ReturnConsumedCapacity costs the server ~20% of its speed.
        Contender(
            "AWS SDK for JS v3 x16 + ReturnConsumedCapacity",
            "js-16-cc",
            "peer_js",
            ("--in-flight", "16", "--consumed-capacity", "TOTAL"),
        ),
        Contender(LOADER, "loader-default", "loader"),
        Contender("ddb-loader --workers 32", "loader-32", "loader", ("--workers", "32")),
        Contender(
            "server ceiling (raw aiohttp x32)", "ceiling", "peer_ceiling", ("--in-flight", "32")
        ),
    ]
    return [who for who in everyone if common.runnable(who.module, who.label)]


def run_one(url: str, source: Path, items: int, who: Contender, timeout_s: float) -> dict[str, Any]:
    """Run one contender into its own fresh table; check the count; drop the table."""
    print(f"{who.label} ...", flush=True)
    table = common.create_table(url, who.table, gsi=False)
    if who.module == "loader":
        child, report = common.run_loader(
            source, table, url, *who.args, timeout_s=timeout_s, who=who.label
        )
        written, elapsed, calls = report["items_written"], report["elapsed_s"], report["requests"]
    else:
        command = common.peer_command(who.module, url, table, source, *who.args)
        child = common.run_child(command, timeout_s=timeout_s).check(who.label)
        line = child.last_json()
        written, elapsed, calls = line["items"], line["elapsed_s"], line["api_calls"]
    if not who.time_boxed and written != items:
        raise SystemExit(f"FAILED: {who.label} wrote {written:,} of {items:,} items")
    common.check_count(url, table, written, who.label)
    common.delete_table(url, table)
    rate = written / elapsed if elapsed else 0.0
    return {
        "tool": who.label,
        "items": written,
        "elapsed_s": round(elapsed, 3),
        "items_per_second": round(rate, 1),
        "api_calls": calls,
        "time_boxed": who.time_boxed,
        "extrapolated_s_for_all": round(items / rate, 1) if who.time_boxed and rate else None,
        "wall_s": round(child.wall_s, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--items", type=int, default=50_000)
    args.add_argument("--put-time-limit", type=float, default=30.0, help="time-box (s)")
    args.add_argument("--warmup", type=int, default=5_000, help="items to warm the JVM up with")
    args.add_argument("--timeout", type=float, default=300, help="hard limit per contender (s)")
    opts = args.parse_args(argv)
    common.begin(NAME)
    source = common.catalog_file(opts.items)
    with common.dynamodb_local() as url:
        common.warm_up(url, opts.warmup)
        results = [
            run_one(url, source, opts.items, who, opts.timeout)
            for who in contenders(opts.put_time_limit)
        ]
    loader_rate = next(r["items_per_second"] for r in results if r["tool"] == LOADER)
    for r in results:
        r["loader_ratio"] = common.ratio(loader_rate, r["items_per_second"])
    report(results, opts.items, opts.put_time_limit)
    return 0


def report(results: list[dict[str, Any]], items: int, put_time_limit: float) -> None:
    print()
    common.print_table(
        ["tool", "items", "seconds", "items/s", "API calls", "ddb-loader / this"],
        [
            [
                r["tool"] + (" *" if r["time_boxed"] else ""),
                r["items"],
                r["elapsed_s"],
                r["items_per_second"],
                r["api_calls"],
                r["loader_ratio"],
            ]
            for r in results
        ],
    )
    for r in results:
        if r["time_boxed"]:
            print(
                f"* time-boxed to {put_time_limit:.0f} s: items/s measured over the box; "
                f"all {items:,} items would take ~{r['extrapolated_s_for_all']:,.0f} s"
            )
    common.save_json(
        NAME,
        {
            "items": items,
            "table": "PK/SK strings, no GSI, on-demand, fresh per contender",
            "put_time_limit_s": put_time_limit,
            "contenders": results,
        },
    )
    common.save_bar_chart(
        NAME,
        [r["tool"] for r in results],
        [r["items_per_second"] for r in results],
        ylabel="items/s",
        title=f"{items:,} catalog items into DynamoDB Local (PK/SK, no GSI)",
    )


if __name__ == "__main__":
    sys.exit(main())
