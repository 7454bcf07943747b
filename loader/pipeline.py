"""Wires the stages: sources → codec → batcher → bounded queue → workers → DynamoDB.

One `asyncio.TaskGroup` owns the reader, the workers and the ticker (progress and
checkpoints). The reader is the only producer: when the queue is full it waits,
so a slow table slows the reading and memory stays flat. Workers report each
write's outcome to the `Ledger`, the one place that counts, frees keys in the
batcher, advances the checkpoint watermark and writes the rejects file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any, Protocol

from loader.backoff import Backoff, Clock, RateLimiter
from loader.batcher import MAX_BATCH_OPS, Batcher, Dispatch
from loader.checkpoint import Checkpoint, Watermark, fingerprint
from loader.client import DynamoClient, open_client
from loader.codec import CodecError, Index, KeySchema, MissingKey, Write, encode
from loader.config import LoadConfig
from loader.errors import (
    Aborted,
    ConfigError,
    Outcome,
    RequestRejected,
    SourceError,
    TableNotFound,
    TransientError,
    first_of,
)
from loader.metrics import Events, LoadReport, Metrics, Snapshot, Subscriber
from loader.model import Record, Reject
from loader.rejects import RejectsFile
from loader.sources import detect_format, format_of, open_source
from loader.writer import DryRun, Writer

log = logging.getLogger("ddb_loader")
_REJECTED = object()

Feed = AsyncIterator[list[tuple[int, Record | Reject]]]
"""Numbered records, in input order: from the sources, or from a router's pipe."""

ProgressCallback = Callable[[Snapshot, int], None]
"""Called about once a second with a snapshot and the input's total size in bytes (0: unknown)."""


@asynccontextmanager
async def connect(
    config: LoadConfig, client: DynamoClient | None
) -> AsyncIterator[tuple[DynamoClient, list[tuple[str, str]], dict[str, KeySchema]]]:
    """The client, the resolved sources and every table's key schema: all a job needs
    to start, found (or refused with a ConfigError) before anything is read or written."""
    sources = _resolve_sources(config)
    async with AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(
                open_client(
                    endpoint_url=config.endpoint_url,
                    region=config.region,
                    profile=config.profile,
                    connections=config.workers + 4,
                )
            )
        yield client, sources, await preflight(client, config, sources)


def _resolve_sources(config: LoadConfig) -> list[tuple[str, str]]:
    """Every input file with its format's name: folders expanded, formats detected.

    Raises:
        ConfigError: a file is missing, a format unknown, or --table needed and absent.
    """
    resolved = []
    for path in config.sources:
        fmt = format_of(config.format if config.format != "auto" else detect_format(path))
        if path != "-" and not os.path.exists(path):
            raise ConfigError(f"Cannot read {path}: no such file or folder.")
        if path == "-" and not fmt.stdin:
            raise ConfigError(f"A {fmt.name} file cannot come from standard input: name it.")
        for file in fmt.expand(path) if fmt.expand else [path]:
            resolved.append((file, fmt.name))
    if not resolved:
        raise ConfigError("The sources hold no data files.")
    if config.table is None and not all(format_of(f).names_tables for _, f in resolved):
        raise ConfigError("--table is required (only request-items files name their tables).")
    return resolved


async def preflight(
    client: DynamoClient, config: LoadConfig, sources: list[tuple[str, str]]
) -> dict[str, KeySchema]:
    """Describe (or create) every table the job writes to, before reading anything.

    Raises:
        ConfigError: a table is missing, or DynamoDB cannot be reached or refuses us.
    """
    tables = [config.table] if config.table else []
    for path, name in sources:
        listed = format_of(name).tables
        if listed is not None:
            tables += [t for t in listed(path) if t not in tables]
    schemas = {}
    for table in tables:
        try:
            if config.create_table:
                await _create_table(client, table, config.keys)
            description = (await client.describe_table(table))["Table"]
        except TransientError as exc:
            where = config.endpoint_url or "the AWS endpoint"
            raise ConfigError(f"Cannot reach DynamoDB at {where}: {exc}.") from None
        except TableNotFound:
            raise ConfigError(
                f"Table {table!r} does not exist at {config.endpoint_url or 'AWS'}"
                " (create it first, or pass --create-table --key NAME:TYPE)."
            ) from None
        schemas[table] = schema_of(table, description)
    return schemas


def schema_of(table: str, description: dict[str, Any]) -> KeySchema:
    """The KeySchema of a DescribeTable answer."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    keys = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
    hash_name, range_name = keys["HASH"], keys.get("RANGE")
    indexes = []
    for spec in description.get("GlobalSecondaryIndexes", []) + description.get(
        "LocalSecondaryIndexes", []
    ):
        names = tuple(k["AttributeName"] for k in spec["KeySchema"])
        projection = spec.get("Projection", {})
        projected: frozenset[str] | None = None
        if projection.get("ProjectionType", "ALL") != "ALL":
            projected = frozenset(
                (
                    hash_name,
                    *([range_name] if range_name else []),
                    *names,
                    *projection.get("NonKeyAttributes", []),
                )
            )
        indexes.append(Index(spec["IndexName"], names, projected))
    return KeySchema(
        table,
        hash_name,
        types[hash_name],
        range_name,
        types[range_name] if range_name else None,
        tuple(indexes),
    )


async def _create_table(client: DynamoClient, table: str, keys: Iterable[tuple[str, str]]) -> None:
    keys = list(keys)
    schema = [{"AttributeName": keys[0][0], "KeyType": "HASH"}]
    if len(keys) > 1:
        schema.append({"AttributeName": keys[1][0], "KeyType": "RANGE"})
    try:
        await client.create_table(
            TableName=table,
            KeySchema=schema,
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
            BillingMode="PAY_PER_REQUEST",
        )
    except RequestRejected as exc:
        if exc.code != "ResourceInUseException":  # it exists already: fine
            raise ConfigError(f"Cannot create table {table!r}: {exc}.") from None


class Ledger:
    """Every write's outcome goes through here, exactly once: it announces it, frees the
    key in the batcher, moves the watermark and writes the rejects file."""

    def __init__(
        self,
        events: Subscriber,
        batcher: Batcher,
        rejects: RejectsFile,
        watermark: Watermark,
        max_rejects: int | None,
    ) -> None:
        self._events = events
        self._batcher = batcher
        self._rejects = rejects
        self._watermark = watermark
        self._max_rejects = max_rejects
        self.rejected_count = 0
        self.released = asyncio.Event()

    def written(self, writes: list[Write]) -> None:
        self._finish(writes)

    def rejected(self, writes: list[Write], reason: str, *, gave_up: bool = False) -> None:
        for write in writes:
            self._rejects.add(write.source, write.line, reason, write.text)
        self._count_rejects(len(writes), gave_up)
        self._finish(writes)

    def reject_record(self, seq: int, reject: Reject) -> None:
        self._rejects.add(reject.source, reject.line, reject.reason, reject.record)
        self._watermark.done(seq)
        self._count_rejects(1, False)

    def _finish(self, writes: list[Write]) -> None:
        self._batcher.finished(writes)
        done = self._watermark.done
        for write in writes:
            done(write.seq)
        self.released.set()

    def _count_rejects(self, records: int, gave_up: bool) -> None:
        self._events.on_rejected(records=records, gave_up=gave_up)
        self.rejected_count += records
        if self._max_rejects is not None and self.rejected_count > self._max_rejects:
            raise Aborted(f"more than {self._max_rejects} records rejected (--max-rejects)")


class Worker(Protocol):
    """Takes batches from the dispatch until everything is through."""

    async def run(self, dispatch: Dispatch) -> None: ...


class Job:
    """One run of the pipeline. `load` sends the batches with a `Writer`; `verify` reads
    them back with its own worker, through the same reading, ordering and accounting."""

    def __init__(
        self,
        config: LoadConfig,
        client: DynamoClient,
        schemas: dict[str, KeySchema],
        sources: list[tuple[str, str]],
        clock: Clock,
        rng: random.Random,
        on_progress: ProgressCallback | None,
        *,
        batch_ops: int = MAX_BATCH_OPS,
        worker: Callable[[Job], Worker] | None = None,
        feed: Feed | None = None,
        watermark: Watermark | None = None,
    ) -> None:
        self.config = config
        self.feed = feed
        self.schemas = schemas
        self.sources = sources
        self.clock = clock
        self.on_progress = on_progress
        self.metrics = Metrics(clock.now())
        self.events = Events([self.metrics])
        self.batcher = Batcher(max_ops=batch_ops)
        self.dispatch = Dispatch(config.queue_size, clock, max_ops=batch_ops)
        self.checkpoint = (
            Checkpoint(config.checkpoint, fingerprint([p for p, _ in sources]))
            if config.checkpoint
            else None
        )
        self.skip = 0 if feed else self._resume_point()
        self.watermark = watermark or Watermark(self.skip)
        self.rejects = RejectsFile(config.rejects)
        self.ledger = Ledger(
            self.events, self.batcher, self.rejects, self.watermark, config.max_rejects
        )
        self.client = client
        self.backoff = Backoff(config.backoff_base_s, config.backoff_cap_s, rng)
        if worker is None and config.dry_run:
            worker = _dry_run
        self.worker: Worker = (
            worker(self)
            if worker
            else Writer(
                client=client,
                schemas=schemas,
                outcomes=self.ledger,
                events=self.events,
                limiter=RateLimiter(clock, max_wcu=config.max_wcu, adaptive=config.adaptive),
                backoff=self.backoff,
                clock=clock,
                max_retries=config.max_retries,
            )
        )
        self.sizes = [_size(p) for p, _ in sources]
        self.total_bytes = sum(self.sizes)
        self._bytes_done = 0
        # Only the job that reads the input from its start sees its first record (not a
        # writer process, not a resumed job).
        self._first = feed is None and self.skip == 0
        self._stopping: str | None = None
        self._deadline: asyncio.Timeout | None = None

    def _resume_point(self) -> int:
        if self.checkpoint is None or not self.config.resume:
            return 0
        done = self.checkpoint.load()
        if done is None:
            log.warning(
                "No checkpoint at %s yet: starting from the beginning.", self.config.checkpoint
            )
            return 0
        log.warning("Resuming: skipping the %d records already finished.", done)
        return done

    async def run(self, stop: asyncio.Event | None = None) -> LoadReport:
        """Run to the end of the input, or until `stop` is set (then: stop reading, let the
        batches in flight finish for up to `stop_grace_s`, and report "aborted")."""
        done = asyncio.Event()
        cancelled = False
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._work(done))
                group.create_task(self._tick(done))
                if stop is not None:
                    group.create_task(self._watch(stop, done))
        except* Aborted as caught:
            self._stopping = self._stopping or str(first_of(caught))
        except* (ConfigError, SourceError) as caught:
            self.close()
            raise first_of(caught) from None
        except* asyncio.CancelledError:
            cancelled = True
        if cancelled:
            # Stopped at once (a second signal): what is durable so far is what counts.
            # Raised bare, outside `except*`, so callers see a CancelledError, not a group.
            self.close()
            raise asyncio.CancelledError
        self.close()
        now = self.clock.now()
        if self._stopping:
            return self.metrics.report(now, Outcome.ABORTED, self._stopping)
        return self.metrics.report(now, Outcome.DRY_RUN if self.config.dry_run else Outcome.OK)

    def close(self) -> None:
        """Save the checkpoint (rejects first) and close the rejects file."""
        self._save()
        self.rejects.close()

    async def _work(self, done: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(None) as self._deadline:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._read())
                    for _ in range(self.config.workers):
                        group.create_task(self.worker.run(self.dispatch))
        except TimeoutError:
            pass  # the grace period after a stop ran out; in-flight writes stay pending
        finally:
            done.set()

    async def _watch(self, stop: asyncio.Event, done: asyncio.Event) -> None:
        stopped = asyncio.ensure_future(stop.wait())
        finished = asyncio.ensure_future(done.wait())
        try:
            await asyncio.wait((stopped, finished), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            finished.cancel()
        if stop.is_set() and not done.is_set():
            self.request_stop("interrupted")

    def request_stop(self, why: str) -> None:
        """Stop reading now; batches already with a worker get `stop_grace_s` to finish.

        Batches still queued are dropped: never sent, they stay pending in the
        checkpoint and a `--resume` sends them.
        """
        if self._stopping:
            return
        self._stopping = why
        self.dispatch.stop()
        if self._deadline is not None:
            self._deadline.reschedule(asyncio.get_running_loop().time() + self.config.stop_grace_s)

    async def _tick(self, stop: asyncio.Event) -> None:
        interval = self.config.checkpoint_interval_s
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if self.checkpoint is not None:
                # Off the event loop: fsync can take long on a busy disk.
                await asyncio.to_thread(self._durable, self.watermark.value)
            if self.on_progress is not None:
                self.on_progress(self.metrics.snapshot(self.clock.now()), self.total_bytes)

    def _save(self) -> None:
        if self.checkpoint is not None:
            self._durable(self.watermark.value)

    def _durable(self, records_done: int) -> None:
        """Save `records_done`, taken on the event loop before this runs in a thread: the
        rejects of every record below it were written by then, and are synced first."""
        assert self.checkpoint is not None
        self.rejects.sync()
        self.checkpoint.save(records_done)

    async def numbered(self) -> AsyncIterator[list[tuple[int, Record | Reject]]]:
        """The input's records with their numbers (1, 2, …), past those a resume skips."""
        events = self.events
        seq = 0
        csv_types = self._csv_types()
        for path, fmt in self.sources:
            async for records, offset in open_source(path, fmt, csv_types=csv_types):
                events.on_bytes(read=self._bytes_done + max(offset, 0))
                first = seq + 1
                seq += len(records)
                if seq <= self.skip:
                    events.on_skipped(records=seq)
                    continue
                if first <= self.skip:
                    records = records[self.skip - first + 1 :]
                    events.on_skipped(records=self.skip)
                    first = self.skip + 1
                yield list(zip(range(first, seq + 1), records, strict=True))
            self._bytes_done += self.sizes[self.sources.index((path, fmt))]

    async def _read(self) -> None:
        dispatch, batcher, ledger = self.dispatch, self.batcher, self.ledger
        waiting_limit = self.config.queue_size * 25
        async for numbered in self.feed or self.numbered():
            if self._stopping:
                return
            handled = 0
            try:
                for seq, record in numbered:
                    handled += 1
                    if type(record) is Reject:
                        ledger.reject_record(seq, record)
                        continue
                    write = self._encode(seq, record)  # type: ignore[arg-type]
                    if write is None:
                        continue
                    for batch in batcher.add(write):
                        await dispatch.put(batch)
                    if batcher.waiting > waiting_limit:
                        await self._drain(until_idle=False)
                    if self._stopping:
                        return
            finally:
                self.events.on_read(records=handled)  # once a chunk, however it ends
        await self._drain(until_idle=True)
        dispatch.close()

    async def _drain(self, *, until_idle: bool) -> None:
        """Send what is open or released, then wait for keys to free up: until nothing is
        left (end of input), or until the writes waiting on busy keys are few again."""
        limit = self.config.queue_size * 25
        while True:
            self.ledger.released.clear()
            for batch in self.batcher.drain():
                await self.dispatch.put(batch)
            if self._stopping:
                return
            if self.batcher.idle if until_idle else self.batcher.waiting <= limit:
                return
            await self.ledger.released.wait()

    def check_first(self, seq: int, record: Record) -> Write | None:
        """Encode the job's first record for its checks alone (a reader that hands records
        on to other processes calls this): raises ConfigError, or records a reject."""
        return self._encode(seq, record)

    def _encode(self, seq: int, record: Record) -> Write | None:
        table = record.table or self.config.table
        assert table is not None
        schema = self.schemas[table]
        value = record.value
        if self.config.templates and not record.typed:
            value = self._apply_templates(seq, record)
            if value is _REJECTED:
                return None
        try:
            write = encode(
                seq=seq,
                source=record.source,
                line=record.line,
                value=value,
                text=record.text,
                typed=record.typed,
                delete=record.delete or self.config.mode == "delete",
                schema=schema,
            )
        except CodecError as exc:
            if self._first and isinstance(exc, MissingKey):
                raise ConfigError(
                    f"The first record ({record.source}:{record.line}) does not carry the key of "
                    f"table {table!r} ({', '.join(schema.names)}): {exc}."
                ) from None
            self._first = False
            self.ledger.reject_record(
                seq, Reject(record.source, record.line, str(exc), record.text)
            )
            return None
        self._first = False
        return write

    def _apply_templates(self, seq: int, record: Record) -> Any:
        """The record with its --set attributes, or _REJECTED (already in the rejects file)."""
        if not isinstance(record.value, dict):
            return record.value  # encode() rejects it with the right reason
        value = dict(record.value)
        for attribute, template in self.config.templates:
            try:
                value[attribute] = template.format_map(value)
            except (KeyError, IndexError, ValueError) as exc:
                reason = f"--set {attribute}={template}: the record has no field {exc}"
                if self._first:
                    raise ConfigError(
                        f"{reason} (first record, {record.source}:{record.line})."
                    ) from None
                self.ledger.reject_record(
                    seq, Reject(record.source, record.line, reason, record.text)
                )
                return _REJECTED
        return value

    def _csv_types(self) -> dict[str, str]:
        # Key columns take the table's declared type unless the user typed them.
        types: dict[str, str] = {}
        for schema in self.schemas.values():
            types[schema.hash_name] = "N" if schema.hash_type == "N" else "S"
            if schema.range_name and schema.range_type:
                types[schema.range_name] = "N" if schema.range_type == "N" else "S"
        types.update(self.config.csv_types)
        return types


def _dry_run(job: Job) -> Worker:
    return DryRun(outcomes=job.ledger, events=job.events)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path) if path != "-" else 0
    except OSError:
        return 0


__all__ = ["Job", "ProgressCallback", "connect", "preflight", "schema_of"]
