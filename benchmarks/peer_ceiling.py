"""The server's ceiling: how fast DynamoDB Local accepts BatchWriteItem when the client
does (almost) nothing.

    python -m benchmarks.peer_ceiling --endpoint URL --table T --source FILE.jsonl \
        [--in-flight 32] [--items N]

Before the clock starts, every 25-item request is built, serialized to its JSON body
and SigV4-signed with botocore (DynamoDB Local does not check signatures but wants the
header). Timed: sending them with aiohttp, `--in-flight` at once, each answer checked for
status 200 and empty `UnprocessedItems`. Prints the same JSON line as the other peers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from benchmarks.peer_boto3 import parser, read_items, result

BATCH = 25
TARGET = "DynamoDB_20120810.BatchWriteItem"


def batches(items: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_requests(
    url: str, table: str, items: Iterator[dict[str, Any]]
) -> list[tuple[bytes, dict[str, str], int]]:
    """(body, signed headers, item count) for every batch, ready to send as is."""
    import botocore.session
    from boto3.dynamodb.types import TypeSerializer
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    region = session.get_config_variable("region") or "us-east-1"
    signer = SigV4Auth(credentials, "dynamodb", region)
    serialize = TypeSerializer().serialize
    requests = []
    for batch in batches(items):
        puts = [{"PutRequest": {"Item": {k: serialize(v) for k, v in i.items()}}} for i in batch]
        body = json.dumps(
            {"RequestItems": {table: puts}, "ReturnConsumedCapacity": "TOTAL"},
            separators=(",", ":"),
        ).encode()
        request = AWSRequest(
            method="POST",
            url=url.rstrip("/") + "/",
            data=body,
            headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGET},
        )
        signer.add_auth(request)
        requests.append((body, dict(request.headers.items()), len(batch)))
    return requests


async def send_all(
    url: str, requests: list[tuple[bytes, dict[str, str], int]], in_flight: int
) -> int:
    """Send every request with `in_flight` workers; the number of items written."""
    import aiohttp

    queue = iter(requests)
    written = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal written
        for body, headers, count in queue:
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {answer[:300]!r}")
                if json.loads(answer).get("UnprocessedItems"):
                    raise RuntimeError("UnprocessedItems in an answer: the ceiling is not clean")
                written += count

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(in_flight)))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--in-flight", type=int, default=32, help="concurrent requests")
    opts = args.parse_args(argv)
    requests = build_requests(opts.endpoint, opts.table, read_items(opts.source, opts.items))
    started = time.monotonic()
    written = asyncio.run(send_all(opts.endpoint.rstrip("/") + "/", requests, opts.in_flight))
    elapsed = time.monotonic() - started
    result(f"raw aiohttp x{opts.in_flight} (pre-built)", written, elapsed, len(requests), False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
