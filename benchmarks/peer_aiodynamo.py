"""Peer: aiodynamo (an asyncio DynamoDB client) over aiohttp, N tasks of 25-item batches.

    python -m benchmarks.peer_aiodynamo --endpoint URL --table T --source FILE.jsonl \
        [--tasks 16] [--items N]

aiodynamo's batch API is `Client.batch_write`: one BatchWriteItem, whose answer's
`UnprocessedItems` it hands back decoded (`BatchWriteResult.unput_items`) without resending
them. Its own retry (`Client.throttle_config`, by default `ExponentialBackoffRetry`:
a random wait of up to 2**attempt s, at most 20 s, for 60 s) covers only requests refused
whole (throttling, 5xx, timeouts). So each task resends a batch's unprocessed items on that
same schedule until none is left, then takes the next 25 items: the loop the DynamoDB
documentation prescribes, paced by the library's own backoff.

Times reading + writing and prints the same JSON line as `benchmarks.peer_boto3`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
from aiodynamo.client import Client
from aiodynamo.credentials import EnvironmentCredentials
from aiodynamo.http.aiohttp import AIOHTTP
from aiodynamo.http.types import HttpImplementation, Request, Response
from aiodynamo.models import BatchWriteRequest
from yarl import URL

from benchmarks.peer_boto3 import parser, read_items, result

BATCH = 25


@dataclass(slots=True)
class CountingHttp:
    """aiodynamo's HTTP implementation, counting the requests sent (retries included)."""

    inner: HttpImplementation
    calls: int = 0

    async def __call__(self, request: Request) -> Response:
        self.calls += 1
        return await self.inner(request)


def batches(items: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """`items` in lists of 25; one shared iterator, so tasks take the next batch in turn."""
    while chunk := list(itertools.islice(items, BATCH)):
        yield chunk


async def write_batch(client: Client, table: str, items: list[dict[str, Any]]) -> None:
    """One batch until DynamoDB took all of it, waiting between rounds as aiodynamo's
    throttle config says (it raises RetryTimeout past its time limit)."""
    pending = items
    async for _ in client.throttle_config.attempts():
        unprocessed = await client.batch_write({table: BatchWriteRequest(items_to_put=pending)})
        pending = unprocessed[table].unput_items if table in unprocessed else []
        if not pending:
            return


async def worker(client: Client, table: str, work: Iterator[list[dict[str, Any]]]) -> int:
    done = 0
    for chunk in work:
        await write_batch(client, table, chunk)
        done += len(chunk)
    return done


async def write_all(opts: argparse.Namespace) -> tuple[int, float, int]:
    async with aiohttp.ClientSession() as session:
        http = CountingHttp(AIOHTTP(session))
        # Only the environment's (dummy) credentials: its default chain would also try
        # the instance metadata service. Decimal numbers, so that items handed back as
        # unprocessed are resent with the values they came with.
        client = Client(
            http,
            EnvironmentCredentials(),
            "us-east-1",
            endpoint=URL(opts.endpoint),
            numeric_type=Decimal,
        )
        started = time.monotonic()
        work = batches(read_items(opts.source, opts.items))
        done = await asyncio.gather(*(worker(client, opts.table, work) for _ in range(opts.tasks)))
        return sum(done), time.monotonic() - started, http.calls


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--tasks", type=int, default=16, help="concurrent batch writers")
    opts = args.parse_args(argv)
    done, elapsed, calls = asyncio.run(write_all(opts))
    result(f"aiodynamo batch_write x{opts.tasks}", done, elapsed, calls, False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
