"""Peer: aioboto3's `batch_writer()`, one writer or N concurrent ones.

    python -m benchmarks.peer_aioboto3 --endpoint URL --table T --source FILE.jsonl \
        [--writers 16] [--items N]

With N writers the items are split into N contiguous slices, each written by its own
`batch_writer` in one `asyncio.gather` — the usual way to get concurrency out of it.
Times reading + writing and prints the same JSON line as `benchmarks.peer_boto3`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.peer_boto3 import CallCounter, parser, read_items, result


def slices(items: list[dict[str, Any]], count: int) -> list[list[dict[str, Any]]]:
    """`items` in `count` contiguous slices of near-equal size."""
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for n in range(count):
        stop = start + size + (1 if n < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


async def write_slice(table: Any, items: list[dict[str, Any]]) -> int:
    async with table.batch_writer() as writer:
        for item in items:
            await writer.put_item(Item=item)
    return len(items)


async def write_all(opts: Any, items_of: Any) -> tuple[int, float, int]:
    import aioboto3
    from botocore.config import Config

    config = Config(max_pool_connections=max(10, opts.writers))
    session = aioboto3.Session()
    async with session.resource("dynamodb", endpoint_url=opts.endpoint, config=config) as ddb:
        counter = CallCounter()
        counter.attach(ddb.meta.client)
        table = await ddb.Table(opts.table)
        started = time.monotonic()
        items = items_of()
        done = await asyncio.gather(*(write_slice(table, s) for s in slices(items, opts.writers)))
        return sum(done), time.monotonic() - started, counter.calls


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--writers", type=int, default=16, help="concurrent batch_writers")
    opts = args.parse_args(argv)

    def items_of() -> list[dict[str, Any]]:
        return list(read_items(opts.source, opts.items))

    done, elapsed, calls = asyncio.run(write_all(opts, items_of))
    result(f"aioboto3 batch_writer x{opts.writers}", done, elapsed, calls, False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
