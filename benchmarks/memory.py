"""Does ddb-loader's memory stay flat as the input grows? Peak RSS of the CLI loading
100,000 and 1,000,000 catalog items from JSONL (or Parquet) against the zero-work endpoint.

    python -m benchmarks.memory [--sizes 100000 1000000] [--max-ratio 1.2] [--max-mb 200]
    python -m benchmarks.memory --format parquet   # the same catalog, row groups of 100,000

Results go to memory.json (memory_parquet.json).

Peak RSS is the child's own `ru_maxrss` (from `os.wait4`); RSS is also sampled every
0.2 s for the chart. The input files are generated once into `.cache/bench/` and reused
(the 1M file is ~640 MB). Passes if the largest peak is at most `--max-ratio` times
the smallest and under `--max-mb`; exits 1 otherwise (after saving the results).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks import common

NAME = "memory"
TABLE = "bench"


def parquet_file(items: int) -> Any:
    """The JSONL catalog as Parquet (`.cache/bench/catalog-<items>.parquet`), made once,
    in a process of its own: converting holds the whole table, and a child forked from
    a process that big starts with its pages (and its peak RSS says so)."""
    source = common.catalog_file(items)
    path = source.with_suffix(".parquet")
    if not path.exists():
        partial = path.with_suffix(".tmp")
        convert = (
            "import sys, pyarrow.json as pj, pyarrow.parquet as pq; "
            "pq.write_table(pj.read_json(sys.argv[1]), sys.argv[2], row_group_size=100_000)"
        )
        subprocess.run([sys.executable, "-c", convert, str(source), str(partial)], check=True)
        partial.replace(path)
    return path


def measure(url: str, items: int, timeout_s: float, fmt: str) -> dict[str, Any]:
    """Load `items` items with the ddb-loader CLI; its peak RSS and an RSS time series."""
    source = parquet_file(items) if fmt == "parquet" else common.catalog_file(items)
    print(f"ddb-loader, {items:,} items ({source.stat().st_size / 1e6:,.0f} MB) ...", flush=True)
    # One writer process at every size: the default adds one from 64 MB of input, and
    # its memory would count as the input's.
    child, report = common.run_loader(
        source,
        TABLE,
        url,
        "--processes",
        "1",
        timeout_s=timeout_s,
        who="ddb-loader",
        sample_rss_every_s=0.2,
    )
    if report["items_written"] != items:
        raise SystemExit(f"FAILED: ddb-loader wrote {report['items_written']:,} of {items:,}")
    return {
        "items": items,
        "input_mb": round(source.stat().st_size / 1e6, 1),
        "peak_rss_mb": round(child.maxrss_mb, 1),
        "wall_s": round(child.wall_s, 2),
        "items_per_second": report["items_per_second"],
        "cpu_s": round(child.cpu_s, 2),
        "rss_samples_mb": [(round(t, 2), round(mb, 1)) for t, mb in child.rss_samples],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args.add_argument("--max-ratio", type=float, default=1.2, help="target: largest/smallest")
    args.add_argument(
        "--max-mb",
        type=float,
        default=None,
        help="target: peak RSS below this (default 200; 300 for parquet: pyarrow itself "
        "takes about 140 MB)",
    )
    args.add_argument("--timeout", type=float, default=600, help="hard limit per run (s)")
    args.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    opts = args.parse_args(argv)
    name = NAME if opts.format == "jsonl" else f"{NAME}_{opts.format}"
    if opts.max_mb is None:
        opts.max_mb = 200.0 if opts.format == "jsonl" else 300.0
    common.begin(name)
    sizes = sorted(opts.sizes)
    for items in sizes:  # generate before timing anything
        parquet_file(items) if opts.format == "parquet" else common.catalog_file(items)
    with common.null_endpoint() as url:
        runs = [measure(url, items, opts.timeout, opts.format) for items in sizes]
    growth = common.ratio(runs[-1]["peak_rss_mb"], runs[0]["peak_rss_mb"])
    passed = growth <= opts.max_ratio and all(r["peak_rss_mb"] < opts.max_mb for r in runs)
    print()
    common.print_table(
        ["items", "input MB", "peak RSS MB", "seconds"],
        [[r["items"], r["input_mb"], r["peak_rss_mb"], r["wall_s"]] for r in runs],
    )
    verdict = "PASS" if passed else "FAIL"
    print(
        f"\npeak RSS {runs[-1]['items']:,} / {runs[0]['items']:,} items: {growth}x "
        f"(target ≤ {opts.max_ratio}x and < {opts.max_mb:.0f} MB): {verdict}"
    )
    common.save_json(
        name,
        {
            "format": opts.format,
            "endpoint": "benchmarks.null_endpoint (zero work)",
            "runs": runs,
            "ratio": growth,
            "targets": {"max_ratio": opts.max_ratio, "max_mb": opts.max_mb},
            "passed": passed,
        },
    )
    common.save_line_chart(
        name,
        {f"{r['items']:,} items": r["rss_samples_mb"] for r in runs},
        xlabel="seconds",
        ylabel="RSS (MB)",
        title=f"ddb-loader RSS loading {opts.format}: peak {growth}x for "
        f"{sizes[-1] // sizes[0]}x input",
        hline=(opts.max_mb, f"target < {opts.max_mb:.0f} MB"),
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
