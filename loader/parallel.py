"""`--processes N`: N writer processes, and every key in exactly one of them.

Each writer process runs the same `Job` as a single-process load, on its own event loop,
and takes the records whose partition key hashes to it, in input order: all the
operations on one key pass through one process and one batcher in input order, so
last-write-wins holds exactly as in one process, however far apart the duplicates.

How the records reach the writers, chosen by measurement (zero-work endpoint, catalog
items, 2 processes):
- JSONL files: every writer reads the whole file itself and keeps its own lines; it
  peeks at each line's key with msgspec (~1.5 µs a line) and parses only its own. The
  main process only checks the first record and merges. Against a main process that
  reads and ships lines to the writers over pipes (~7 µs a line of its own CPU, and a
  core it competes for): 1.63 against 1.56x the items/s of one process at 200,000 items,
  in the same run.
- stdin (readable once) and other formats: the main process reads, and routes raw JSONL
  lines or parsed records to the writers over pipes, by the same hash.

Writers report to the main process twice a second: their counters, latency buckets,
the lowest record number they have not finished and how far they have read. The main
process merges them into the progress display, the report and the checkpoint, whose
watermark is the lowest unfinished record over all writers (and the pipes between).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import pickle
import random
import signal
import zlib
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from loader.backoff import Clock, SystemClock
from loader.client import DynamoClient, Resolved, WireClient, open_client, resolved_of
from loader.codec import KeySchema, Num, normal_number
from loader.config import LoadConfig
from loader.errors import Aborted, ConfigError, LoaderError, Outcome, SourceError, first_of
from loader.metrics import Counters, Histogram, LoadReport, Snapshot, report_of
from loader.model import Record, Reject
from loader.pipeline import Job, ProgressCallback, connect
from loader.runtime import run
from loader.sources import format_of
from loader.sources._lines import line_chunks
from loader.sources.jsonl import jsonl_record, raw_lines

REPORT_INTERVAL_S = 0.5


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


RawLine = tuple[str, int, bytes]
"""A JSONL line shipped unparsed: (source, line number, bytes); its writer parses it."""

RawBlock = tuple[str, list[int], list[int], list[bytes]]
"""JSONL lines of one source shipped unparsed, as columns: (source, record numbers, line
numbers, lines). A third of the pickling cost of a list of (seq, RawLine) (measured:
0.5 against 1.65 µs a line, dumps and loads)."""


def route(record: Record, default_table: str | None, schemas: dict[str, KeySchema], n: int) -> int:
    """The writer process of a record: a stable hash of its table and partition-key value."""
    table = record.table or default_table or ""
    schema = schemas.get(table)
    value = record.value.get(schema.hash_name) if schema and type(record.value) is dict else None
    if type(value) is dict and len(value) == 1:  # typed: {"S": "..."}
        ((kind, value),) = value.items()
        if kind == "N":
            value = Num(value)
    return _shard(table, value, n)


def _shard(table: str, value: Any, n: int) -> int:
    if type(value) is int or type(value) is Num:
        value = normal_number(value)  # 1 and 1.0, 0 and -0 are one key: route them alike
    return zlib.crc32(f"{table}\x00{value}".encode()) % n


class KeyPeek:
    """Reads only the partition key of a JSON line: msgspec skips the other fields
    without building them, ~5x cheaper than parsing the record (which its writer does)."""

    def __init__(self, table: str, hash_name: str, n: int) -> None:
        shape = msgspec.defstruct("Key", [("key", Any, None)], rename={"key": hash_name})
        self._decode = msgspec.json.Decoder(shape, float_hook=Num).decode
        self._table = table
        self._n = n
        self._prefix = zlib.crc32(f"{table}\x00".encode())

    def shard(self, raw: bytes) -> int:
        try:
            value = self._decode(raw).key  # type: ignore[attr-defined]
        except (msgspec.DecodeError, UnicodeDecodeError):
            return 0  # a bad line: any writer rejects it, with its reason
        if type(value) is str:  # _shard's hash, continued from the table's prefix
            return zlib.crc32(value.encode(), self._prefix) % self._n
        return _shard(self._table, value, self._n)


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


# ---------------------------------------------------------------- writer process


@dataclasses.dataclass(frozen=True, slots=True)
class Share:
    """A writer process that reads the JSONL files itself and keeps its own keys."""

    index: int
    n: int
    table: str
    hash_name: str
    start: int  # records up to this one are done: finished before a resume, or rejected
    # by the main process's first-record check
    sizes: tuple[int, ...]  # of the input files, for progress


@dataclasses.dataclass(frozen=True, slots=True)
class Start:
    """What the main process found before starting its writers, so that none of them
    imports botocore, resolves the endpoint or describes the tables again (0.5 s of CPU
    each, measured)."""

    resolved: Resolved
    schemas: dict[str, KeySchema]
    sources: list[tuple[str, str]]


def writer_process(
    config: LoadConfig,
    inbox: Connection,
    outbox: Connection,
    start: Start | None = None,
    share: Share | None = None,
) -> None:
    """Entry point of a writer process (spawned): run one Job fed from `inbox`, or from
    its own share of the input files."""
    # Ctrl-C reaches the whole process group; only the main process decides to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run(_writer(config, inbox, outbox, start, share))
    except LoaderError as exc:  # before its job started (a job's own errors: `_writer`)
        outbox.send_bytes(pickle.dumps(WriterReport(final=True, **_failure(exc))))


def _failure(exc: LoaderError) -> dict[str, Any]:
    """A writer's error as WriterReport fields (exceptions with keyword fields do not
    survive pickling)."""
    if isinstance(exc, SourceError):
        return {"error": str(exc), "kind": "source", "path": exc.path, "line": exc.line}
    return {"error": str(exc), "kind": "config" if isinstance(exc, ConfigError) else ""}


@contextlib.asynccontextmanager
async def _connect(
    config: LoadConfig, start: Start | None
) -> AsyncIterator[tuple[DynamoClient, list[tuple[str, str]], dict[str, KeySchema]]]:
    if start is None:
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


class _Progress:
    """How far a sharing writer has read: every record up to `read` is its own and
    issued to its watermark, or another writer's."""

    read = 0
    bytes_read = 0


async def own_lines(
    share: Share, sources: list[tuple[str, str]], watermark: SparseWatermark, progress: _Progress
) -> AsyncIterator[list[tuple[int, Record | Reject]]]:
    """Every line of the input, numbered as one reader would; the lines whose key hashes
    to this writer, parsed. Each writer reads the whole input: reading and peeking at a
    key costs ~1.5 µs a line, against ~7 µs a line for a reader that ships lines to the
    writers over pipes (measured), and the main process is left idle."""
    shard_of = KeyPeek(share.table, share.hash_name, share.n).shard
    mine, start = share.index, share.start
    progress.read = start
    seq = 0
    done_bytes = 0
    for (path, _), size in zip(sources, share.sizes, strict=True):
        async for lines in line_chunks(path):
            if lines.offset >= 0:  # the end-of-file chunk has none
                progress.bytes_read = done_bytes + lines.offset
            chunk: list[tuple[int, Record | Reject]] = []
            for number, raw in enumerate(lines.lines, lines.first):
                if not raw or raw.isspace():
                    continue  # not a record: blank lines have no number
                seq += 1
                if seq <= start or shard_of(raw) != mine:
                    continue
                watermark.issue(seq)
                chunk.append((seq, jsonl_record(path, number, raw)))
            progress.read = max(seq, start)
            if chunk:
                yield chunk
        done_bytes += size
        progress.bytes_read = done_bytes


async def _writer(
    config: LoadConfig,
    inbox: Connection,
    outbox: Connection,
    start: Start | None,
    share: Share | None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    pool = ThreadPoolExecutor(2, thread_name_prefix="pipe")
    watermark = SparseWatermark()
    progress = _Progress()
    received = 0

    async def feed() -> AsyncIterator[list[tuple[int, Record | Reject]]]:
        nonlocal received
        while True:
            try:
                data = await loop.run_in_executor(pool, inbox.recv_bytes)
            except (EOFError, OSError):
                return  # the main process is gone: finish what is here
            shipped = pickle.loads(data)
            if shipped is None:
                return
            if type(shipped) is tuple:  # a RawBlock: JSONL lines to parse here
                name, seqs, numbers, raws = shipped
                chunk = [
                    (seq, jsonl_record(name, number, raw))
                    for seq, number, raw in zip(seqs, numbers, raws, strict=True)
                ]
            else:
                chunk = [
                    (seq, jsonl_record(*item) if type(item) is tuple else item)
                    for seq, item in shipped
                ]
            for seq, _ in chunk:
                watermark.issue(seq)
            received += 1
            yield chunk

    synced = 0

    def send(job: Job | None, final: bool, ended: LoadReport | None = None, **error: Any) -> None:
        nonlocal synced
        if job is not None and job.ledger.rejected_count > synced:
            # The main process's checkpoint may pass `low` as soon as it reads it: the
            # rejects below it must be on disk first.
            job.rejects.sync()
            synced = job.ledger.rejected_count
        report = WriterReport(
            received=received,
            low=watermark.low,
            read=progress.read,
            bytes_read=progress.bytes_read,
            counts=job.metrics.counters() if job is not None else Counters(),
            latency=job.metrics.latency if job is not None else None,
            final=final,
            outcome=ended.outcome if ended is not None else None,
            reason=ended.reason if ended is not None else "",
            **error,
        )
        outbox.send_bytes(pickle.dumps(report))

    async with _connect(config, start) as (client, sources, schemas):
        job = Job(
            config,
            client,
            schemas,
            sources,
            _clock(),
            random.Random(),
            None,
            feed=feed() if share is None else own_lines(share, sources, watermark, progress),
            watermark=watermark,  # type: ignore[arg-type]
        )

        finished = asyncio.Event()

        async def report() -> None:
            while not finished.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), REPORT_INTERVAL_S)
                if not finished.is_set():
                    send(job, final=False)

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
        if isinstance(failure, LoaderError):
            send(job, final=True, **_failure(failure))
        else:
            send(job, final=True, ended=running.result())
    pool.shutdown(wait=False, cancel_futures=True)


def _clock() -> Clock:
    return SystemClock()


# ---------------------------------------------------------------- main process


@dataclasses.dataclass(slots=True)
class _Writer:
    process: Any
    inbox: Connection  # main → writer
    outbox: Connection  # writer → main
    queue: asyncio.Queue[Any]  # list[tuple[int, Record | Reject]] | RawBlock | None
    shipped: deque[tuple[int, int]] = dataclasses.field(default_factory=deque)  # (chunk no, first)
    sent_chunks: int = 0
    report: WriterReport = WriterReport()

    def low(self) -> int | None:
        """Lowest unfinished record of this writer, counting what is still in the pipe."""
        while self.shipped and self.shipped[0][0] < self.report.received:
            self.shipped.popleft()
        lows = [self.shipped[0][1]] if self.shipped else []
        if self.report.low is not None:
            lows.append(self.report.low)
        return min(lows) if lows else None

    def finished(self, start: int) -> int:
        """A writer that reads for itself: all records up to this one are through it."""
        low = self.report.low
        return low - 1 if low is not None else max(self.report.read, start)


async def load_parallel(
    config: LoadConfig,
    client: DynamoClient,
    schemas: dict[str, KeySchema],
    sources: list[tuple[str, str]],
    clock: Clock,
    on_progress: ProgressCallback | None,
    stop: asyncio.Event | None,
) -> LoadReport:
    """Read and route here; write in `config.processes` writer processes.

    Raises:
        ConfigError: bad configuration found on the first record, or by a writer.
    """
    job = Job(config, client, schemas, sources, clock, random.Random(), None)
    n = config.processes
    child_config = dataclasses.replace(
        config,
        processes=1,
        # Each writer paces its own share: keys spread evenly over the writers by hash.
        max_wcu=config.max_wcu / n if config.max_wcu is not None else None,
        checkpoint=None,
        resume=False,
        report=None,
        progress=False,
        create_table=False,
        max_rejects=None,
    )
    start = (
        Start(await resolved_of(client), schemas, sources) if type(client) is WireClient else None
    )
    peek = (
        KeyPeek(config.table, schemas[config.table].hash_name, n)
        if config.table and not config.templates
        else None
    )
    raw_input = peek is not None and all(format_of(f).json_lines for _, f in sources)
    # Files the writers can each read themselves (not stdin): measured fastest, see own_lines.
    shared = raw_input and all(path != "-" for path, _ in sources)
    shares: list[Share | None] = [None] * n
    done_before = job.skip  # with shared reading: records no writer takes
    if shared:
        assert config.table is not None
        try:
            done_before = await _check_first(job) if job.skip == 0 else job.skip
        except Aborted as exc:  # --max-rejects, before any writer started
            job.close()  # the checkpoint passes the lines rejected so far, as in one process
            return job.metrics.report(clock.now(), Outcome.ABORTED, str(exc))
        except ConfigError:
            job.close()
            raise
        hash_name = schemas[config.table].hash_name
        shares = [
            Share(i, n, config.table, hash_name, done_before, tuple(job.sizes)) for i in range(n)
        ]
    context = multiprocessing.get_context("spawn")
    pool = ThreadPoolExecutor(2 * n, thread_name_prefix="pipe")
    loop = asyncio.get_running_loop()
    writers: list[_Writer] = []
    for share in shares:
        to_child, from_main = context.Pipe(duplex=False)
        from_child, to_main = context.Pipe(duplex=False)
        process = context.Process(
            target=writer_process,
            args=(child_config, to_child, to_main, start, share),
            daemon=True,
        )
        process.start()
        to_child.close()
        to_main.close()
        writers.append(_Writer(process, from_main, from_child, asyncio.Queue(2)))
    outcome = ""
    cancelled = False
    source_error: BaseException | None = None
    last_seq = job.skip
    window: deque[tuple[float, int, float]] = deque()

    def totals() -> Counters:
        """The writers' counts; records read are the main process's own unless each
        writer reads the input itself."""
        counts = sum((w.report.counts for w in writers), Counters())
        return counts if shared else dataclasses.replace(counts, records_read=0)

    def watermark() -> int:
        if shared:
            return min(w.finished(done_before) for w in writers)
        lows = [low for w in writers if (low := w.low()) is not None]
        return min(lows) - 1 if lows else last_seq

    def save() -> None:
        if job.checkpoint is not None:
            durable(watermark())

    def durable(records_done: int) -> None:
        assert job.checkpoint is not None
        job.rejects.sync()  # the main process's own rejects; the writers synced theirs
        job.checkpoint.save(records_done)

    async def ship(writer: _Writer) -> None:
        while True:
            chunk = await writer.queue.get()
            try:
                await loop.run_in_executor(pool, writer.inbox.send_bytes, pickle.dumps(chunk))
            except OSError:
                raise Aborted("a writer process stopped early") from None
            if chunk is None:
                return

    async def listen(writer: _Writer) -> None:
        while not writer.report.final:
            try:
                data = await loop.run_in_executor(pool, writer.outbox.recv_bytes)
            except (EOFError, OSError):
                error = writer.report.error or "a writer process died"
                writer.report = dataclasses.replace(writer.report, final=True, error=error)
                return
            writer.report = pickle.loads(data)
            if config.max_rejects is not None and total_rejected() > config.max_rejects:
                raise Aborted(f"more than {config.max_rejects} records rejected (--max-rejects)")

    def total_rejected() -> int:
        return job.metrics.rejected + totals().rejected

    async def read_raw() -> None:
        """JSONL lines to their writers unparsed, as RawBlocks; only the key is read here."""
        nonlocal last_seq
        assert peek is not None
        shard_of = peek.shard
        events = job.events
        skip = job.skip
        first = skip == 0
        seq = 0
        done_bytes = 0
        for (path, _), size in zip(sources, job.sizes, strict=True):
            name = "<stdin>" if path == "-" else path
            async for lines, offset in raw_lines(path):
                events.on_bytes(read=done_bytes + max(offset, 0))
                blocks: list[RawBlock] = [(name, [], [], []) for _ in range(n)]
                if seq + len(lines) <= skip:
                    seq += len(lines)
                    events.on_skipped(records=seq)
                    continue
                if seq < skip:
                    lines = lines[skip - seq :]
                    seq = skip
                events.on_skipped(records=skip)
                events.on_read(records=len(lines))
                for number, raw in lines:
                    seq += 1
                    if first:
                        # The checks that stop a job on its first record happen here, once,
                        # on the first that parses (as in one process).
                        record = jsonl_record(name, number, raw)
                        if isinstance(record, Reject):
                            job.ledger.reject_record(seq, record)
                            continue
                        first = False
                        if job.check_first(seq, record) is None:
                            continue
                    _, seqs, numbers, raws = blocks[shard_of(raw)]
                    seqs.append(seq)
                    numbers.append(number)
                    raws.append(raw)
                last_seq = max(last_seq, seq)
                for writer, block in zip(writers, blocks, strict=True):
                    if block[1]:
                        writer.shipped.append((writer.sent_chunks, block[1][0]))
                        writer.sent_chunks += 1
                        await writer.queue.put(block)
                if stop is not None and stop.is_set():
                    return
            done_bytes += size

    async def read() -> None:
        nonlocal last_seq
        default_table = config.table
        first = job.skip == 0
        async for chunk in job.numbered():
            shards: list[list[tuple[int, Any]]] = [[] for _ in range(n)]
            job.events.on_read(records=len(chunk))
            for seq, item in chunk:
                last_seq = seq
                if isinstance(item, Reject):
                    job.ledger.reject_record(seq, item)
                    continue
                if first:
                    first = False
                    # The checks that stop a job on its first record happen here, once.
                    if job.check_first(seq, item) is None:
                        continue
                shards[route(item, default_table, schemas, n)].append((seq, item))
            for writer, shard in zip(writers, shards, strict=True):
                if shard:
                    writer.shipped.append((writer.sent_chunks, shard[0][0]))
                    writer.sent_chunks += 1
                    await writer.queue.put(shard)
            if stop is not None and stop.is_set():
                return

    async def tick() -> None:
        while True:
            await asyncio.sleep(config.checkpoint_interval_s)
            if job.checkpoint is not None:  # off the event loop: fsync can take long
                await asyncio.to_thread(durable, watermark())
            if on_progress is not None:
                on_progress(snapshot(), job.total_bytes)

    def snapshot() -> Snapshot:
        now = clock.now()
        counts = job.metrics.counters() + totals()
        window.append((now, counts.written, counts.consumed_wcu))
        while len(window) > 2 and window[0][0] < now - 5:
            window.popleft()
        span = max(now - window[0][0], 1e-9)
        if shared:
            job.events.on_bytes(read=min(w.report.bytes_read for w in writers))
        return Snapshot(
            elapsed_s=now - job.metrics.started,
            records_read=counts.records_read + counts.skipped_on_resume,
            written=counts.written,
            rejected=counts.rejected,
            consumed_wcu=counts.consumed_wcu,
            rate=(counts.written - window[0][1]) / span if len(window) > 1 else 0.0,
            wcu_rate=(counts.consumed_wcu - window[0][2]) / span if len(window) > 1 else 0.0,
            throttled_requests=counts.throttled_requests,
            bytes_read=job.metrics.bytes_read,
        )

    def stop_writers(how: int) -> None:
        for writer in writers:
            if writer.process.is_alive() and writer.process.pid is not None:
                os.kill(writer.process.pid, how)

    async def watch_stop() -> None:
        nonlocal outcome
        if stop is None:
            return
        await stop.wait()
        outcome = outcome or "interrupted"
        stop_writers(signal.SIGTERM)

    try:
        async with asyncio.TaskGroup() as group:
            background = [group.create_task(tick()), group.create_task(watch_stop())]
            listeners = [group.create_task(listen(w)) for w in writers]
            if shared:
                job.events.on_skipped(records=job.skip)
            else:
                shippers = [group.create_task(ship(w)) for w in writers]
                try:
                    await (read_raw() if raw_input else read())
                except SourceError as exc:  # what was read still goes to the writers
                    source_error = exc
                finally:
                    for writer in writers:
                        await writer.queue.put(None)
                await asyncio.gather(*shippers)
            await asyncio.gather(*listeners)
            for task in background:
                task.cancel()
    except* Aborted as caught:
        outcome = outcome or str(caught.exceptions[0])
        stop_writers(signal.SIGTERM)
    except* ConfigError as caught:  # the first record's checks, before anything was shipped
        stop_writers(signal.SIGKILL)
        job.close()
        raise caught.exceptions[0] from None
    except* asyncio.CancelledError:
        cancelled = True
    finally:
        for writer in writers:
            writer.process.join(timeout=config.stop_grace_s + 5)
            if writer.process.is_alive():
                writer.process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
    if cancelled:
        stop_writers(signal.SIGKILL)
        save()
        raise asyncio.CancelledError  # bare, not in a group: the CLI reports "stopped at once"
    for writer in writers:
        ended = writer.report
        if ended.kind == "config":
            save()
            job.rejects.close()
            raise ConfigError(ended.error)
        if ended.kind == "source":
            source_error = source_error or SourceError(
                ended.error, path=ended.path, line=ended.line
            )
        elif ended.error:
            outcome = outcome or ended.error
        elif ended.outcome is Outcome.ABORTED:
            outcome = outcome or ended.reason
    save()
    job.rejects.close()
    if source_error is not None:  # as in one process: the checkpoint saved, no report
        raise source_error
    return _report(job, writers, clock.now(), outcome, shared=shared)


async def _check_first(job: Job) -> int:
    """The checks that stop a job on its first record, before any writer starts, as one
    process makes them: lines that do not parse are rejected until one does, and that
    record is checked (ConfigError). Returns the number of the last record handled here
    (0: none), so that no writer takes them again."""
    seq = 0
    for path, _ in job.sources:
        async with contextlib.aclosing(raw_lines(path)) as chunks:
            async for lines, _offset in chunks:
                for number, raw in lines:
                    seq += 1
                    record = jsonl_record(path, number, raw)
                    if isinstance(record, Reject):
                        job.events.on_read(records=1)  # read here: no writer takes it
                        job.ledger.reject_record(seq, record)
                        continue
                    if job.check_first(seq, record) is not None:
                        return seq - 1  # checked: its writer reads and writes it
                    job.events.on_read(records=1)
                    return seq  # the check rejected it (a key of the wrong type, say)
    return seq


def _report(
    job: Job, writers: list[_Writer], now: float, aborted: str, *, shared: bool
) -> LoadReport:
    """The main process's counts and the writers' added up, their latency histograms
    merged (`aborted`: why the job stopped early, or "")."""
    counts = job.metrics.counters()
    latency = Histogram()
    latency.merge(job.metrics.latency)
    for writer in writers:
        part = writer.report.counts
        counts += part if shared else dataclasses.replace(part, records_read=0)
        if writer.report.latency is not None:
            latency.merge(writer.report.latency)
    outcome = Outcome.ABORTED if aborted else Outcome.OK
    return report_of(counts, latency, now - job.metrics.started, outcome, aborted)
