"""A `--processes` writer process: the same `Job` as one process runs, fed with its own
keys, reporting to the main process in `WriterReport`s."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pickle
import random
import signal
from collections import deque
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from multiprocessing.connection import Connection
from typing import Any

from loader.backoff import SystemClock
from loader.client import DynamoClient, open_client
from loader.codec import KeySchema
from loader.config import LoadConfig
from loader.credentials import Resolved
from loader.errors import ConfigError, LoaderError, Outcome, SourceError, first_of
from loader.lease import LeasedPacer, leased
from loader.metrics import Counters, Histogram, LoadReport, Subscriber
from loader.model import Record, Reject
from loader.parallel.routing import KeyPeek
from loader.pipeline import Feed, Job
from loader.preflight import connect
from loader.reading import Sources, numbered_lines
from loader.runtime import run
from loader.sources.jsonl import jsonl_record

REPORT_INTERVAL_S = 0.5

RawBlock = tuple[str, list[int], list[int], list[bytes]]
"""JSON lines of one source shipped unparsed, as columns: (source, record numbers, line
numbers, lines): columns pickle for much less than a list of tuples."""

Shipped = list[tuple[int, Record | Reject]] | RawBlock | None
"""What the router sends down a writer's pipe: parsed records, raw lines, or the end."""


@dataclasses.dataclass(frozen=True, slots=True)
class WriterReport:
    """What a writer process tells the main process, twice a second and when it ends."""

    received: int = 0  # chunks taken from its pipe
    low: int | None = None  # its lowest unfinished record
    read: int = 0  # a sharing writer: every record up to here is through it, or another's
    bytes_read: int = 0
    counts: Counters = dataclasses.field(default_factory=Counters)
    latency: Histogram | None = None
    final: bool = False
    outcome: Outcome | None = None
    reason: str = ""
    error: str = ""  # it failed: the sentence for the user, and what kind of failure
    kind: str = ""  # "config", "source" (with path and line) or "" (anything else)
    path: str = ""
    line: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Share:
    """A writer process that reads the JSON-lines files itself and keeps its own keys."""

    index: int
    n: int
    table: str
    hash_name: str
    start: int  # records up to this one are done: before a resume, or by the first check


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    """The main process's lease service, which shares --max-wcu among the writers
    (`loader.lease`) by what each can use, not split evenly once at the start: keys are
    spread over the writers by hash, and a writer left with few to write would leave the
    rest of its share unused while the others wait for theirs."""

    address: str
    token: str
    fixed: float  # --max-wcu, for all the writers together


@dataclasses.dataclass(frozen=True, slots=True)
class Start:
    """What the main process resolved before starting its writers, so that none of them
    imports botocore, resolves the endpoint or describes the tables again."""

    resolved: Resolved
    schemas: dict[str, KeySchema]
    sources: Sources


class SparseWatermark:
    """The lowest unfinished record number among those a writer process received."""

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()

    def issue(self, seq: int) -> None:
        self._pending.append(seq)

    def done(self, seq: int) -> None:
        pending = self._pending
        if pending and pending[0] == seq:
            pending.popleft()
            while pending and pending[0] in self._done:
                self._done.remove(pending.popleft())
        else:
            self._done.add(seq)

    @property
    def low(self) -> int | None:
        return self._pending[0] if self._pending else None


class _Progress(Subscriber):
    """How far a sharing writer has read: every record up to `read` is its own and
    issued to its watermark, or another writer's."""

    def __init__(self, start: int) -> None:
        self.read = start
        self.bytes_read = 0

    def on_bytes(self, *, read: int) -> None:
        self.bytes_read = read


def writer_process(
    config: LoadConfig,
    inbox: Connection,
    outbox: Connection,
    start: Start | None = None,
    share: Share | None = None,
    lease: Lease | None = None,
) -> None:
    """Entry point of a writer process (spawned): run one Job fed from `inbox`, or from
    its own share of the input files."""
    # Ctrl-C reaches the whole process group; only the main process decides to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run(_Child(config, inbox, outbox, share, lease).run(start))
    except LoaderError as exc:  # before its job started (a job's own errors: `_Child.run`)
        outbox.send_bytes(pickle.dumps(WriterReport(final=True, **_failure(exc))))


def _failure(exc: BaseException) -> dict[str, Any]:
    """A writer's error as WriterReport fields (exceptions with keyword fields do not
    survive pickling)."""
    if isinstance(exc, SourceError):
        return {"error": str(exc), "kind": "source", "path": exc.path, "line": exc.line}
    return {"error": str(exc), "kind": "config" if isinstance(exc, ConfigError) else ""}


class _Child:
    def __init__(
        self,
        config: LoadConfig,
        inbox: Connection,
        outbox: Connection,
        share: Share | None,
        lease: Lease | None,
    ) -> None:
        self._config = config
        self._lease = lease
        self._inbox = inbox
        self._outbox = outbox
        self._share = share
        self._watermark = SparseWatermark()
        self._progress = _Progress(share.start if share else 0)
        self._received = 0
        self._synced = 0
        self._job: Job | None = None

    async def run(self, start: Start | None) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        pool = ThreadPoolExecutor(1, thread_name_prefix="pipe")
        clock, lease = SystemClock(), self._lease
        pacer = None if lease is None else LeasedPacer(clock, adaptive=False)
        try:
            async with _connect(self._config, start) as (client, sources, schemas):
                feed = self._piped(pool) if self._share is None else self._own(sources)
                self._job = Job(
                    self._config,
                    client,
                    schemas,
                    sources,
                    clock,
                    random.Random(),
                    None,
                    feed=feed,
                    watermark=self._watermark,
                    pacer=pacer,
                )
                if lease is None or pacer is None:
                    await self._run_job(stop)
                    return
                async with leased(
                    lease.address, lease.token, "load", str(os.getpid()), pacer, fixed=lease.fixed
                ) as lost:
                    # The main process out of reach that long is gone: stop as it would.
                    watch = asyncio.create_task(_relay(lost, stop))
                    try:
                        await self._run_job(stop)
                    finally:
                        watch.cancel()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    async def _run_job(self, stop: asyncio.Event) -> None:
        assert self._job is not None
        job = self._job
        finished = asyncio.Event()

        async def report() -> None:
            while not finished.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), REPORT_INTERVAL_S)
                if not finished.is_set():
                    self._send(final=False)

        async def work() -> LoadReport:
            try:
                return await job.run(stop)
            finally:
                finished.set()

        failure: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(report())
                running = group.create_task(work())
        except* LoaderError as caught:
            failure = first_of(caught)
        if failure is not None:
            self._send(final=True, **_failure(failure))
        else:
            self._send(final=True, ended=running.result())

    def _send(self, *, final: bool, ended: LoadReport | None = None, **failure: Any) -> None:
        job = self._job
        if job is not None and job.ledger.rejected_count > self._synced:
            # The main process's checkpoint may pass `low` as soon as it reads it: the
            # rejects below it must be on disk first.
            job.rejects.sync()
            self._synced = job.ledger.rejected_count
        report = WriterReport(
            received=self._received,
            low=self._watermark.low,
            read=self._progress.read,
            bytes_read=self._progress.bytes_read,
            counts=job.metrics.counters() if job is not None else Counters(),
            latency=job.metrics.latency if job is not None else None,
            final=final,
            outcome=ended.outcome if ended is not None else None,
            reason=ended.reason if ended is not None else "",
            **failure,
        )
        self._outbox.send_bytes(pickle.dumps(report))

    async def _piped(self, pool: ThreadPoolExecutor) -> Feed:
        """The records the router sends down the pipe, until it sends the end."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.run_in_executor(pool, self._inbox.recv_bytes)
            except (EOFError, OSError):
                return  # the main process is gone: finish what is here
            shipped: Shipped = pickle.loads(data)
            if shipped is None:
                return
            if type(shipped) is tuple:  # a RawBlock: JSON lines to parse here
                name, seqs, numbers, raws = shipped
                chunk = [
                    (seq, jsonl_record(name, number, raw))
                    for seq, number, raw in zip(seqs, numbers, raws, strict=True)
                ]
            else:
                chunk = shipped  # type: ignore[assignment]
            for seq, _ in chunk:
                self._watermark.issue(seq)
            self._received += 1
            yield chunk

    async def _own(self, sources: Sources) -> Feed:
        """Every line of the input, numbered as one reader numbers it; the lines whose key
        hashes to this writer, parsed. Each writer reads the whole input, so the main
        process neither reads nor pickles a line, and needs no core of its own."""
        share = self._share
        assert share is not None
        shard_of = KeyPeek(share.table, share.hash_name, share.n).shard
        mine, issue = share.index, self._watermark.issue
        async with aclosing(numbered_lines(sources, share.start, self._progress)) as stream:
            async for name, first, lines in stream:
                chunk: list[tuple[int, Record | Reject]] = []
                for seq, (number, raw) in enumerate(lines, first):
                    if shard_of(raw) == mine:
                        issue(seq)
                        chunk.append((seq, jsonl_record(name, number, raw)))
                self._progress.read = first + len(lines) - 1
                if chunk:
                    yield chunk


async def _relay(event: asyncio.Event, to: asyncio.Event) -> None:
    await event.wait()
    to.set()


@contextlib.asynccontextmanager
async def _connect(
    config: LoadConfig, start: Start | None
) -> AsyncGenerator[tuple[DynamoClient, Sources, dict[str, KeySchema]], None]:
    if start is None:  # a client that is not ours (tests): the writer looks for itself
        async with connect(config, None) as found:
            yield found
        return
    async with open_client(
        endpoint_url=config.endpoint_url,
        region=config.region,
        profile=config.profile,
        connections=config.workers + 4,
        resolved=start.resolved,
    ) as client:
        yield client, start.sources, start.schemas
