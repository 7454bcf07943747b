"""How much faster, and with how many fewer API calls, is ddb-loader than one `PutItem`
per item — on the tutorial's table (PK/SK + GSI1, on-demand) in DynamoDB Local?

    python -m benchmarks.put_vs_batch [--items 20000] [--warmup 5000]

Both contenders run as child processes on the same catalog file, each into a fresh
table; a Scan COUNT after each checks every item arrived (it fails loudly otherwise).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common

NAME = "put_vs_batch"


def put_loop(url: str, source: Path, items: int, timeout_s: float) -> dict[str, Any]:
    """(a) boto3 `Table.put_item` once per item."""
    table = common.create_table(url, "put-loop", gsi=True)
    child = common.run_child(
        common.peer_command("peer_boto3", url, table, source, "--mode", "put"),
        timeout_s=timeout_s,
    ).check("PutItem loop")
    line = child.last_json()
    common.check_count(url, table, items, "PutItem loop")
    common.delete_table(url, table)
    return {
        "tool": "boto3 put_item loop",
        "items": line["items"],
        "elapsed_s": line["elapsed_s"],
        "items_per_second": line["items_per_second"],
        "api_calls": line["api_calls"],
        "wall_s": round(child.wall_s, 2),
    }


def ddb_loader(url: str, source: Path, items: int, timeout_s: float) -> dict[str, Any]:
    """(b) the ddb-loader CLI with its defaults."""
    table = common.create_table(url, "ddb-loader", gsi=True)
    child, report = common.run_loader(source, table, url, timeout_s=timeout_s, who="ddb-loader")
    if report["items_written"] != items:
        raise SystemExit(f"FAILED: ddb-loader wrote {report['items_written']} of {items}")
    common.check_count(url, table, items, "ddb-loader")
    common.delete_table(url, table)
    return {
        "tool": "ddb-loader (CLI, defaults)",
        "items": report["items_written"],
        "elapsed_s": report["elapsed_s"],
        "items_per_second": report["items_per_second"],
        "api_calls": report["requests"],
        "wall_s": round(child.wall_s, 2),
        "report": report,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--items", type=int, default=20_000)
    args.add_argument("--warmup", type=int, default=5_000, help="items to warm the JVM up with")
    args.add_argument("--timeout", type=float, default=300, help="hard limit per contender (s)")
    opts = args.parse_args(argv)
    common.begin(NAME)
    source = common.catalog_file(opts.items)
    with common.dynamodb_local() as url:
        common.warm_up(url, opts.warmup)
        print(f"(a) boto3 put_item loop, {opts.items:,} items ...", flush=True)
        put = put_loop(url, source, opts.items, opts.timeout)
        print(f"(b) ddb-loader, {opts.items:,} items ...", flush=True)
        batch = ddb_loader(url, source, opts.items, opts.timeout)
    speedup = common.ratio(batch["items_per_second"], put["items_per_second"])
    fewer_calls = common.ratio(put["api_calls"], batch["api_calls"])
    print()
    common.print_table(
        ["contender", "items", "seconds", "items/s", "API calls"],
        [
            [c["tool"], c["items"], c["elapsed_s"], c["items_per_second"], c["api_calls"]]
            for c in (put, batch)
        ],
    )
    print(f"\nddb-loader: {speedup}x the items/s, {fewer_calls}x fewer API calls")
    common.save_json(
        NAME,
        {
            "items": opts.items,
            "table": "PK/SK strings + GSI1 (ALL), on-demand, fresh per contender",
            "contenders": [put, batch],
            "speedup": speedup,
            "api_call_ratio": fewer_calls,
        },
    )
    common.save_bar_chart(
        NAME,
        [put["tool"], batch["tool"]],
        [put["items_per_second"], batch["items_per_second"]],
        ylabel="items/s",
        title=f"{opts.items:,} catalog items into DynamoDB Local (GSI1): {speedup}x",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
