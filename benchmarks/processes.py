"""Both cores: items/s of `--processes 2` against `--processes 1`, against the zero-work
endpoint, in interleaved rounds of one run.

    python -m benchmarks.processes [--items 500000] [--rounds 3] [--processes 1 2]

Each round runs every process count once, in alternating order (1 2, 2 1, …) to spread
the machine's drift; the ratio is of the medians. items/s is the loader's own
`elapsed_s` (from reading the first record to the last answer, as in every benchmark
here); CPU is user+sys of the loader and its writer processes (`os.wait4`). The
endpoint runs on the same two cores and is not counted: with 2 processes the machine
is saturated, so the ceiling of the ratio is 2 × (CPU per item with 1 process) / (CPU
per item with 2, plus the endpoint's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks import common

NAME = "processes"
TABLE = "bench"
TARGET = 1.7


def measure(url: str, items: int, processes: int, timeout_s: float) -> dict[str, Any]:
    source = common.catalog_file(items)
    label = f"ddb-loader --processes {processes}"
    child, report = common.run_loader(
        source, TABLE, url, "--processes", str(processes), timeout_s=timeout_s, who=label
    )
    if report["items_written"] != items:
        raise SystemExit(f"FAILED: {label} wrote {report['items_written']:,} of {items:,}")
    elapsed = report["elapsed_s"]
    return {
        "processes": processes,
        "items_per_second": round(items / elapsed) if elapsed else 0,
        "elapsed_s": elapsed,
        "wall_s": round(child.wall_s, 2),
        "cpu_s": round(child.cpu_s, 2),
        "us_per_item": round(child.cpu_s / items * 1e6, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--items", type=int, default=500_000)
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args.add_argument("--timeout", type=float, default=600, help="hard limit per run (s)")
    opts = args.parse_args(argv)
    common.begin(NAME)
    common.catalog_file(opts.items)  # generate before timing anything
    counts = sorted(set(opts.processes))
    runs: list[dict[str, Any]] = []
    with common.null_endpoint() as url:
        for number in range(1, opts.rounds + 1):
            for processes in counts if number % 2 else list(reversed(counts)):
                run = {"round": number, **measure(url, opts.items, processes, opts.timeout)}
                print(
                    f"round {number}, --processes {processes}: "
                    f"{run['items_per_second']:,} items/s, {run['us_per_item']} µs CPU/item",
                    flush=True,
                )
                runs.append(run)
    medians = {
        p: {
            key: statistics.median(r[key] for r in runs if r["processes"] == p)
            for key in ("items_per_second", "us_per_item", "elapsed_s")
        }
        for p in counts
    }
    base = medians[counts[0]]["items_per_second"]
    ratios = {p: common.ratio(m["items_per_second"], base) for p, m in medians.items()}
    print()
    common.print_table(
        ["processes", "items/s (median)", "µs CPU/item", f"× --processes {counts[0]}"],
        [
            [p, round(m["items_per_second"]), m["us_per_item"], ratios[p]]
            for p, m in medians.items()
        ],
    )
    best = max(counts)
    print(f"\n--processes {best}: {ratios[best]}x --processes {counts[0]} (target ≥ {TARGET}x)")
    common.save_json(
        NAME,
        {
            "endpoint": "benchmarks.null_endpoint (zero work)",
            "items": opts.items,
            "rounds": opts.rounds,
            "runs": runs,
            "medians": {str(p): m for p, m in medians.items()},
            "ratios": {str(p): r for p, r in ratios.items()},
            "target": TARGET,
        },
    )
    common.save_bar_chart(
        NAME,
        [f"--processes {p}" for p in counts],
        [medians[p]["items_per_second"] for p in counts],
        ylabel="items/s (median)",
        title=f"ddb-loader on the zero-work endpoint, {opts.items:,} items, "
        f"{opts.rounds} rounds: {ratios[best]}x with {best} processes",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
