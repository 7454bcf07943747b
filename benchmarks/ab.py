"""Interleaved A/B runs of the loader CLI from two (or more) checkouts, against one
zero-work endpoint: CPU-seconds (user+sys of the loader and its children, by wait4),
µs/item, items/CPU-s and items/s, median of N rounds.

    python -m benchmarks.ab --file .cache/bench/catalog-100000.jsonl \\
        --checkout base=/tmp/base --checkout new=. --rounds 3 -- --processes 1
    python -m benchmarks.ab --file FILE --checkout "p1=.::--processes 1" \\
        --checkout "p2=.::--processes 2"

Each checkout runs as `python -m loader` with that checkout as cwd and PYTHONPATH,
so each measures its own code. Rounds alternate the order (ABBA…) to spread drift.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import common


def run_once(checkout: Path, source: Path, url: str, extra: Sequence[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = common.loader_command(source, "bench", url, *extra, report=report)
        env = dict(os.environ, PYTHONPATH=str(checkout))
        started = time.monotonic()
        proc = subprocess.Popen(
            command, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
        if proc.returncode != 0:
            raise SystemExit(f"FAILED in {checkout}: exit {proc.returncode}\n{err[-2000:]}")
        data = json.loads(report.read_text(encoding="utf-8"))
    items = data["items_written"]
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "items": items,
        "cpu_s": cpu,
        "us_per_item": cpu / items * 1e6,
        "items_per_cpu_s": items / cpu,
        "items_per_s": items / data["elapsed_s"] if data["elapsed_s"] else 0.0,
        "wall_s": wall,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--file", type=Path, required=True)
    args.add_argument(
        "--checkout",
        action="append",
        required=True,
        help="LABEL=PATH, or LABEL=PATH::ARGS for arguments of this contender alone",
    )
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("extra", nargs="*", help="more loader arguments (after --)")
    opts = args.parse_args(argv)
    common.use_dummy_credentials()
    checkouts = []
    own: dict[str, list[str]] = {}
    for spec in opts.checkout:
        label, rest = spec.split("=", 1)
        path, _, extra = rest.partition("::")
        checkouts.append((label, Path(path).resolve()))
        own[label] = shlex.split(extra)
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in checkouts}
    source = opts.file.resolve()
    with common.null_endpoint() as url:
        for round_no in range(opts.rounds):
            order = checkouts if round_no % 2 == 0 else list(reversed(checkouts))
            for label, path in order:
                r = run_once(path, source, url, [*opts.extra, *own[label]])
                results[label].append(r)
                print(
                    f"round {round_no + 1} {label:>8}: {r['cpu_s']:.2f} CPU-s "
                    f"{r['us_per_item']:.1f} µs/item {r['items_per_s']:,.0f} items/s",
                    flush=True,
                )
    print()
    for label, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{label:>8}: median {med['cpu_s']:.2f} CPU-s, {med['us_per_item']:.1f} µs/item, "
            f"{med['items_per_cpu_s']:,.0f} items/CPU-s, {med['items_per_s']:,.0f} items/s "
            f"(wall {med['wall_s']:.1f} s; {int(med['items']):,} items)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
