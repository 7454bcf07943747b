"""What the command line and Python callers use: load, verify and get.

The one place that decides how a job runs: in this process, or in `--processes N`
writer processes (`loader.parallel`). Both run the same stages; nothing below this
module knows which one was chosen.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from loader.backoff import Clock, SystemClock
from loader.client import DynamoClient, open_client
from loader.codec import Item, to_plain
from loader.config import LoadConfig
from loader.errors import ConfigError, TableNotFound, TransientError
from loader.ledger import Watermarks
from loader.metrics import LoadReport, Subscriber
from loader.pacing import Pacer
from loader.parallel import load_parallel
from loader.pipeline import Job, ProgressCallback
from loader.preflight import connect
from loader.records import SOURCE, Records, records_feed
from loader.rejects import RejectCallback
from loader.sources import FORMATS
from loader.verify import GetResult, VerifyReport, get_items, verify


async def load(
    config: LoadConfig,
    *,
    client: DynamoClient | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    on_progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    records: Records | None = None,
    typed: bool = False,
    on_reject: RejectCallback | None = None,
    watermark: Watermarks | None = None,
    chunked: bool = False,
    source: str = SOURCE,
    pacer: Pacer | None = None,
    subscribers: tuple[Subscriber, ...] = (),
) -> LoadReport:
    """Run one load job and return its report (also when it was aborted).

    The input is `config.sources`, or `records` (dicts, or DynamoDB-JSON items when
    `typed`; `Delete(key)` among them deletes) from an iterable or async iterable
    (`chunked`: an async iterable of lists), named `source` in rejects. Each reject
    goes to the rejects file, if any, and to `on_reject`; `watermark` is told as each
    record is finished. `pacer` paces the sends instead of the job's own (a Spark
    task's share of a fleet's), and `subscribers` see the job's events as they happen.

    Setting `stop` ends the job early and cleanly: reading stops, batches in
    flight finish (within `config.stop_grace_s`), the checkpoint is written.

    Raises:
        ConfigError: bad configuration, found before anything is written.
        SourceError: an input could not be opened or read.
    """
    async with connect(config, client, records=records is not None) as (
        dynamo,
        sources,
        schemas,
    ):
        if records is None and config.processes > 1 and not config.dry_run:
            return await load_parallel(
                config,
                dynamo,
                schemas,
                sources,
                clock or SystemClock(),
                on_progress,
                stop,
                on_reject,
            )
        job = Job(
            config,
            dynamo,
            schemas,
            sources,
            clock or SystemClock(),
            rng or random.Random(),
            on_progress,
            feed=(
                None
                if records is None
                else records_feed(records, typed=typed, chunked=chunked, source=source)
            ),
            first=True if records is not None else None,
            on_reject=on_reject,
            watermark=watermark,
            subscribers=subscribers,
            pacer=pacer,
        )
        return await job.run(stop)


async def get(
    request: Any,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> GetResult:
    """Read the keys of an AWS CLI `batch-get-item --request-items` document.

    Raises:
        ConfigError: a table is missing, DynamoDB cannot be reached, or the request is
            not shaped like the AWS CLI's.
    """
    async with open_client(
        endpoint_url=endpoint_url, region=region, profile=profile, connections=4
    ) as client:
        for table in request if isinstance(request, dict) else ():
            try:
                await client.describe_table(table)
            except TransientError as exc:
                raise ConfigError(f"Cannot reach DynamoDB: {exc}.") from None
            except TableNotFound:
                raise ConfigError(f"Table {table!r} does not exist.") from None
        return await get_items(request, client)


__all__ = ["FORMATS", "GetResult", "Item", "VerifyReport", "get", "load", "to_plain", "verify"]
