"""What does the client itself cost per item? CPU-seconds of the client process, against
a zero-work endpoint (every BatchWriteItem succeeds at once), for ddb-loader and peers.

    python -m benchmarks.client_cost [--items 100000]

Every contender is a child process; its user+sys CPU comes from `os.wait4` on that
child (its own children included), so the accounting is the same for all (the JS
SDK peer's Python launcher execs node in that same process). End to end includes
interpreter start and imports; the marginal cost per item subtracts a
25-item run of the same command, leaving the per-item work alone. The endpoint is
`benchmarks.null_endpoint` in its own process (its CPU is not counted).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import common

NAME = "client_cost"
TABLE = "bench"
BASELINE_ITEMS = 25


@dataclass(frozen=True, slots=True)
class Contender:
    label: str
    module: str  # "loader" for the ddb-loader CLI, else a benchmarks peer
    args: tuple[str, ...] = ()


CONTENDERS = [
    Contender("ddb-loader --processes 1", "loader", ("--processes", "1")),
    Contender("ddb-loader (defaults)", "loader"),
    Contender("boto3 batch_writer", "peer_boto3", ("--mode", "batch-writer")),
    Contender("aioboto3 batch_writer x16", "peer_aioboto3", ("--writers", "16")),
    Contender("AWS SDK for JS v3 x16", "peer_js", ("--in-flight", "16")),
]


def measure(who: Contender, url: str, source: Path, timeout_s: float) -> dict[str, Any]:
    """Run `who` once on `source`: items written, its own elapsed, CPU and peak RSS."""
    if who.module == "loader":
        child, report = common.run_loader(
            source, TABLE, url, *who.args, timeout_s=timeout_s, who=who.label
        )
        items, elapsed = report["items_written"], report["elapsed_s"]
    else:
        command = common.peer_command(who.module, url, TABLE, source, *who.args)
        child = common.run_child(command, timeout_s=timeout_s).check(who.label)
        line = child.last_json()
        items, elapsed = line["items"], line["elapsed_s"]
    return {
        "items": items,
        "elapsed_s": elapsed,
        "cpu_s": round(child.cpu_s, 3),
        "user_s": round(child.user_s, 3),
        "sys_s": round(child.sys_s, 3),
        "maxrss_mb": round(child.maxrss_mb, 1),
        "wall_s": round(child.wall_s, 2),
    }


def run_contender(
    who: Contender, url: str, source: Path, baseline: Path, timeout_s: float
) -> dict[str, Any]:
    print(f"{who.label} ...", flush=True)
    full = measure(who, url, source, timeout_s)
    base = measure(who, url, baseline, timeout_s)
    items, cpu = full["items"], full["cpu_s"]
    marginal = (cpu - base["cpu_s"]) / max(items - base["items"], 1)
    return {
        "tool": who.label,
        **full,
        "items_per_second": round(items / full["elapsed_s"], 1) if full["elapsed_s"] else 0.0,
        "items_per_cpu_second": round(items / cpu, 1) if cpu else 0.0,
        "us_per_item": round(cpu / items * 1e6, 2) if items else 0.0,
        "startup_cpu_s": base["cpu_s"],
        "marginal_us_per_item": round(marginal * 1e6, 2),
    }


def baseline_file() -> Path:
    """The first 25 catalog items: one batch, to measure the fixed start-up cost."""
    return common.catalog_file(BASELINE_ITEMS)


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--items", type=int, default=100_000)
    args.add_argument("--timeout", type=float, default=300, help="hard limit per run (s)")
    opts = args.parse_args(argv)
    common.begin(NAME)
    source = common.catalog_file(opts.items)
    baseline = baseline_file()
    with common.null_endpoint() as url:
        print(f"zero-work endpoint on {url}", flush=True)
        runnable = [c for c in CONTENDERS if common.runnable(c.module, c.label)]
        results = [run_contender(c, url, source, baseline, opts.timeout) for c in runnable]
    for r in results:
        if r["items"] != opts.items:
            raise SystemExit(f"FAILED: {r['tool']} wrote {r['items']:,} of {opts.items:,}")
    report(results, opts.items)
    return 0


def report(results: list[dict[str, Any]], items: int) -> None:
    loader = next(r for r in results if r["tool"] == "ddb-loader (defaults)")
    print()
    common.print_table(
        [
            "tool",
            "items/s",
            "CPU s",
            "items/CPU-s",
            "µs/item",
            "marginal µs/item",
            "start-up CPU s",
            "peak RSS MB",
        ],
        [
            [
                r["tool"],
                r["items_per_second"],
                r["cpu_s"],
                r["items_per_cpu_second"],
                r["us_per_item"],
                r["marginal_us_per_item"],
                r["startup_cpu_s"],
                r["maxrss_mb"],
            ]
            for r in results
        ],
    )
    for r in results:
        if r["tool"].startswith("ddb-loader"):
            continue
        print(
            f"{r['tool']}: {common.ratio(r['us_per_item'], loader['us_per_item'])}x the CPU per "
            f"item of {loader['tool']} (marginal: "
            f"{common.ratio(r['marginal_us_per_item'], loader['marginal_us_per_item'])}x)"
        )
    common.save_json(
        NAME,
        {
            "items": items,
            "endpoint": "benchmarks.null_endpoint (zero work, separate process)",
            "baseline_items": BASELINE_ITEMS,
            "contenders": results,
        },
    )
    common.save_bar_chart(
        NAME,
        [r["tool"] for r in results],
        [r["items_per_cpu_second"] for r in results],
        ylabel="items per client CPU-second (end to end)",
        title=f"Client cost: {items:,} catalog items against a zero-work endpoint",
    )


if __name__ == "__main__":
    sys.exit(main())
