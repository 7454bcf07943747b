"""Peer: what a boto3 user writes by hand — a `Table.put_item` loop, or `Table.batch_writer()`.

    python -m benchmarks.peer_boto3 --endpoint URL --table T --source FILE.jsonl \
        [--mode put|batch-writer] [--items N] [--time-limit S] [--retry-mode standard]

Reads the same JSONL the loader reads (numbers as `Decimal`, as the resource API wants),
times reading + writing (not interpreter start or client creation) and prints one JSON
line: {"tool", "items", "elapsed_s", "items_per_second", "api_calls", "time_limited"}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any


def read_items(path: str | Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The JSONL file's items, numbers with a fraction as `Decimal` (exactly as written)."""
    with open(path, encoding="utf-8") as lines:
        for line in itertools.islice(lines, limit):
            if line.strip():
                yield json.loads(line, parse_float=Decimal)


class CallCounter:
    """Counts the HTTP requests a botocore client sends (retries included)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.dynamodb.*", self)


def parser(description: str) -> argparse.ArgumentParser:
    """The flags every peer takes."""
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:8000")
    args.add_argument("--table", required=True)
    args.add_argument("--source", required=True, help="JSONL file (benchmarks.catalog)")
    args.add_argument("--items", type=int, default=None, help="first N items (default: all)")
    return args


def result(tool: str, items: int, elapsed: float, calls: int, limited: bool) -> None:
    """Print the peer's one-line JSON result."""
    line = {
        "tool": tool,
        "items": items,
        "elapsed_s": round(elapsed, 3),
        "items_per_second": round(items / elapsed, 1) if elapsed > 0 else 0.0,
        "api_calls": calls,
        "time_limited": limited,
    }
    print(json.dumps(line), flush=True)


def put_loop(table: Any, items: Iterator[dict[str, Any]], deadline: float) -> tuple[int, bool]:
    """One `PutItem` per item until done or `deadline`."""
    done = 0
    for item in items:
        if time.monotonic() >= deadline:
            return done, True
        table.put_item(Item=item)
        done += 1
    return done, False


def batch_writer(table: Any, items: Iterator[dict[str, Any]], deadline: float) -> tuple[int, bool]:
    """boto3's `batch_writer()`: 25-item BatchWriteItem, resends UnprocessedItems."""
    done = 0
    limited = False
    with table.batch_writer() as writer:
        for item in items:
            if time.monotonic() >= deadline:
                limited = True
                break
            writer.put_item(Item=item)
            done += 1
    return done, limited


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--mode", choices=["put", "batch-writer"], default="batch-writer")
    args.add_argument(
        "--time-limit", type=float, default=None, help="stop after S seconds (time-box)"
    )
    args.add_argument(
        "--retry-mode",
        choices=["legacy", "standard", "adaptive"],
        default=None,
        help="botocore retry mode (default: botocore's own default)",
    )
    opts = args.parse_args(argv)

    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": opts.retry_mode}) if opts.retry_mode else None
    resource = boto3.resource("dynamodb", endpoint_url=opts.endpoint, config=config)
    counter = CallCounter()
    counter.attach(resource.meta.client)
    table = resource.Table(opts.table)
    write = put_loop if opts.mode == "put" else batch_writer
    started = time.monotonic()
    deadline = started + opts.time_limit if opts.time_limit else float("inf")
    done, limited = write(table, read_items(opts.source, opts.items), deadline)
    elapsed = time.monotonic() - started
    result(f"boto3 {opts.mode}", done, elapsed, counter.calls, limited)
    return 0


if __name__ == "__main__":
    sys.exit(main())
