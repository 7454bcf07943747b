"""The main process of `--processes N`: it starts the writers, routes the input to them
(or lets each read its own share), and merges their reports into one progress line,
one checkpoint and one report."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections import deque
from contextlib import aclosing
from typing import Any

from loader.backoff import Clock
from loader.checkpoint import checkpoint_of, resume_point
from loader.client import DynamoClient, WireClient, resolved_of
from loader.codec import KeySchema
from loader.config import LoadConfig
from loader.errors import Aborted, ConfigError, Outcome, SourceError, first_of
from loader.lease import LeaseService
from loader.metrics import (
    Counters,
    Events,
    Histogram,
    LoadReport,
    Metrics,
    Snapshot,
    Subscriber,
    report_of,
)
from loader.model import Reject
from loader.parallel.child import Lease, RawBlock, Share, Start
from loader.parallel.routing import KeyPeek, route
from loader.parallel.writers import Writers
from loader.pipeline import ProgressCallback
from loader.prepare import Preparer, csv_types
from loader.reading import Sources, numbered, numbered_lines
from loader.rejects import RejectCallback, RejectsFile
from loader.sources import format_of
from loader.sources.jsonl import jsonl_record
from loader.sources.s3 import is_s3, size_of


def writer_config(config: LoadConfig, *, leased: bool) -> LoadConfig:
    """What each writer process runs: one process's job, with nothing of the job as a
    whole (checkpoint, report, progress, --max-rejects, table creation). Leased, the
    lease service keeps --max-wcu for all of them; else each paces at its share of it
    (keys spread evenly over the writers by hash)."""
    n = config.processes
    share = None if leased or config.max_wcu is None else config.max_wcu / n
    return dataclasses.replace(
        config,
        processes=1,
        max_wcu=share,
        checkpoint=None,
        resume=False,
        report=None,
        progress=False,
        create_table=False,
        max_rejects=None,
    )


async def load_parallel(
    config: LoadConfig,
    client: DynamoClient,
    schemas: dict[str, KeySchema],
    sources: Sources,
    clock: Clock,
    on_progress: ProgressCallback | None,
    stop: asyncio.Event | None,
    on_reject: RejectCallback | None = None,
) -> LoadReport:
    """Run the job in `config.processes` writer processes.

    Raises:
        ConfigError: bad configuration found on the first record, or by a writer.
        SourceError: an input could not be read to its end (the checkpoint is saved).
    """
    coordinator = Coordinator(config, schemas, sources, clock, on_progress, stop, on_reject)
    start = (
        Start(await resolved_of(client), schemas, sources) if type(client) is WireClient else None
    )
    return await coordinator.run(start)


class Coordinator:
    """Routes the records to the writers and merges what they report."""

    def __init__(
        self,
        config: LoadConfig,
        schemas: dict[str, KeySchema],
        sources: Sources,
        clock: Clock,
        on_progress: ProgressCallback | None,
        stop: asyncio.Event | None,
        on_reject: RejectCallback | None = None,
    ) -> None:
        self.config = config
        self.schemas = schemas
        self.sources = sources
        self.clock = clock
        self.on_progress = on_progress
        self.stop = stop
        self.n = config.processes
        self.metrics = Metrics(clock.now())
        self.events = Events([self.metrics])
        self.checkpoint = checkpoint_of(config.checkpoint, sources)
        self.skip = resume_point(self.checkpoint, config.resume)
        self.rejects = RejectsFile(config.rejects, on_reject)
        self.preparer = Preparer(config, schemas, self._reject, first=self.skip == 0)
        self.total_bytes = sum(size_of(p) for p, _ in sources)
        self.peek = (
            KeyPeek(config.table, schemas[config.table].hash_name, self.n)
            if config.table and not config.templates
            else None
        )
        self.raw = self.peek is not None and all(format_of(f).json_lines for _, f in sources)
        # Files each writer can read itself (not stdin, and not S3 objects, which are read
        # once, here): the main process then reads nothing.
        self.shared = self.raw and all(path != "-" and not is_s3(path) for path, _ in sources)
        self.done_before = self.skip  # shared reading: records no writer takes
        self.last_seq = self.skip
        self.writers = Writers(self.n)
        self.aborted = ""  # why the job stopped early, if it did
        self.outcome = Outcome.OK
        self._window: deque[tuple[float, int, float]] = deque()

    # ------------------------------------------------------------------ the whole run

    async def run(self, start: Start | None) -> LoadReport:
        """Start the writers, feed them, wait for them, and report."""
        if self.shared:
            try:
                self.done_before = await self._check_first() if self.skip == 0 else self.skip
            except Aborted as exc:  # --max-rejects, before any writer started
                self.close()  # the checkpoint passes the lines rejected so far
                report = self.metrics.report(self.clock.now(), Outcome.ABORTED, str(exc))
                return dataclasses.replace(report, first_rejects=tuple(self.rejects.samples))
            except ConfigError:
                self.close()
                raise
        shares: list[Share | None] = [None] * self.n
        if self.shared:
            assert self.config.table is not None
            hash_name = self.schemas[self.config.table].hash_name
            shares = [
                Share(i, self.n, self.config.table, hash_name, self.done_before)
                for i in range(self.n)
            ]
        # Bounded by --max-wcu, the writers share it through a lease service in this
        # process: a writer with few keys to write leaves the rest of its share to the
        # others. Adapting, each paces itself: the lease's ceiling for an adaptive fleet
        # (1.2x what it had accepted) held writers that started over the table's
        # capacity to a third of it for tens of seconds.
        service, lease = None, None
        try:
            if self.config.max_wcu is not None:
                service = LeaseService()
                lease = Lease(service.start(), service.token, self.config.max_wcu)
            config = writer_config(self.config, leased=lease is not None)
            self.writers.start(config, start, shares, lease)
            source_error = await self._supervise()
        finally:
            self.writers.reap(self.config.stop_grace_s + 5)
            if service is not None:
                service.stop()
        source_error = self._take_failures() or source_error
        self.close()
        if source_error is not None:  # as in one process: the checkpoint saved, no report
            raise source_error
        return self._report()

    async def _supervise(self) -> SourceError | None:
        """Feed and listen to the writers until all are done. Returns the input error
        that ended the reading early, if one did (what was read still goes through).

        Raises:
            ConfigError: the first record does not fit the table.
            asyncio.CancelledError: stopped at once (the checkpoint is saved first).
        """
        source_error: SourceError | None = None
        cancelled = False
        try:
            async with asyncio.TaskGroup() as group:
                background = [group.create_task(self._tick()), group.create_task(self._watch())]
                listeners = [
                    group.create_task(self.writers.listen(w, self._heard)) for w in self.writers.all
                ]
                if self.shared:
                    self.events.on_skipped(records=self.skip)
                else:
                    shippers = [group.create_task(self.writers.feed(w)) for w in self.writers.all]
                    source_error = await self._route()
                    await asyncio.gather(*shippers)
                await asyncio.gather(*listeners)
                for task in background:
                    task.cancel()
        except* Aborted as caught:
            aborted = first_of(caught)
            assert isinstance(aborted, Aborted)
            self._stopped(str(aborted), aborted.outcome)
            self.writers.signal(signal.SIGTERM)
        except* ConfigError as caught:  # the first record's checks, before anything was shipped
            self.writers.signal(signal.SIGKILL)
            self.close()
            raise caught.exceptions[0] from None
        except* asyncio.CancelledError:
            cancelled = True
        if cancelled:
            self.writers.signal(signal.SIGKILL)
            self.save()
            raise asyncio.CancelledError  # bare, not in a group: the CLI says "stopped at once"
        return source_error

    def _take_failures(self) -> SourceError | None:
        """What the writers' last reports say went wrong.

        Raises:
            ConfigError: a writer found the job cannot run (the checkpoint is saved).
        """
        failed: SourceError | None = None
        for writer in self.writers.all:
            ended = writer.report
            if ended.kind == "config":
                self.close()
                raise ConfigError(ended.error)
            if ended.kind == "source":
                failed = failed or SourceError(ended.error, path=ended.path, line=ended.line)
            elif ended.error:
                self._stopped(ended.error, Outcome.ABORTED)
            elif ended.outcome is not None and ended.outcome.stopped_early:
                self._stopped(ended.reason, ended.outcome)
        return failed

    def close(self) -> None:
        """Save the checkpoint (rejects first) and close the rejects file."""
        self.save()
        self.rejects.close()

    # ------------------------------------------------------------------ routing

    async def _route(self) -> SourceError | None:
        """Read the input here and queue each record for its writer; then the end for all."""
        try:
            await (self._route_lines() if self.raw else self._route_records())
        except SourceError as exc:  # what was read still goes to the writers
            return exc
        finally:
            for writer in self.writers.all:
                await writer.queue.put(None)
        return None

    async def _route_lines(self) -> None:
        """JSON lines to their writers unparsed; only the key is read here."""
        assert self.peek is not None
        shard_of = self.peek.shard
        first = self.skip == 0
        async with aclosing(numbered_lines(self.sources, self.skip, self.events)) as stream:
            async for name, start, lines in stream:
                self.events.on_read(records=len(lines))
                blocks: list[RawBlock] = [(name, [], [], []) for _ in range(self.n)]
                for seq, (number, raw) in enumerate(lines, start):
                    if first:
                        # The checks that stop a job on its first record happen here, once, on
                        # the first line that parses (as in one process).
                        record = jsonl_record(name, number, raw)
                        if isinstance(record, Reject):
                            self._reject(seq, record)
                            continue
                        first = False
                        if self.preparer.prepare(seq, record) is None:
                            continue
                    _, seqs, numbers, raws = blocks[shard_of(raw)]
                    seqs.append(seq)
                    numbers.append(number)
                    raws.append(raw)
                self.last_seq = max(self.last_seq, start + len(lines) - 1)
                for writer, block in zip(self.writers.all, blocks, strict=True):
                    if block[1]:
                        await writer.ship(block, block[1][0])
                if self.stop is not None and self.stop.is_set():
                    return

    async def _route_records(self) -> None:
        """Parsed records to their writers, by the same hash."""
        first = self.skip == 0
        feed = numbered(self.sources, self.skip, csv_types(self.config, self.schemas), self.events)
        async with aclosing(feed) as stream:
            async for chunk in stream:
                shards: list[list[Any]] = [[] for _ in range(self.n)]
                self.events.on_read(records=len(chunk))
                for seq, item in chunk:
                    self.last_seq = seq
                    if isinstance(item, Reject):
                        self._reject(seq, item)
                        continue
                    if first:
                        first = False
                        if self.preparer.prepare(seq, item) is None:
                            continue
                    shards[route(item, self.config.table, self.schemas, self.n)].append((seq, item))
                for writer, shard in zip(self.writers.all, shards, strict=True):
                    if shard:
                        await writer.ship(shard, shard[0][0])
                if self.stop is not None and self.stop.is_set():
                    return

    async def _check_first(self) -> int:
        """The checks that stop a job on its first record, made here before any writer
        starts, as one process makes them: lines that do not parse are rejected until one
        does, and that record is checked. Returns the number of the last record handled
        here (0: none), so that no writer takes them again."""
        seq = 0
        async with aclosing(numbered_lines(self.sources, 0, Subscriber())) as stream:
            async for name, start, lines in stream:
                for seq, (number, raw) in enumerate(lines, start):
                    record = jsonl_record(name, number, raw)
                    if isinstance(record, Reject):
                        self.events.on_read(records=1)  # read here: no writer takes it
                        self._reject(seq, record)
                        continue
                    if self.preparer.prepare(seq, record) is not None:
                        return seq - 1  # checked: its writer reads and writes it
                    self.events.on_read(records=1)
                    return seq  # the check rejected it (a key of the wrong type, say)
        return seq

    def _reject(self, seq: int, reject: Reject) -> None:
        self.last_seq = max(self.last_seq, seq)
        self.rejects.add(reject.source, reject.line, reject.reason, reject.record)
        self.events.on_rejected(records=1)
        self._check_max_rejects()

    def _check_max_rejects(self) -> None:
        limit = self.config.max_rejects
        if limit is not None and self._counts().rejected > limit:
            raise Aborted(f"more than {limit} records rejected (--max-rejects)")

    def _heard(self) -> None:
        """After each writer's report: a writer that ran out of retries stops them all,
        as one process stops at its first."""
        self._check_max_rejects()
        for writer in self.writers.all:
            ended = writer.report
            if ended.final and ended.outcome is Outcome.RETRIES_EXHAUSTED:
                raise Aborted(ended.reason, ended.outcome)

    def _stopped(self, why: str, outcome: Outcome) -> None:
        """The job stops early: the first reason is the one reported."""
        if not self.aborted:
            self.aborted, self.outcome = why, outcome

    # ------------------------------------------------------------------ the writers' side

    async def _watch(self) -> None:
        if self.stop is None:
            return
        await self.stop.wait()
        self._stopped("interrupted", Outcome.ABORTED)
        self.writers.signal(signal.SIGTERM)

    # ------------------------------------------------------------------ merging

    def _counts(self) -> Counters:
        """The main process's counts and the writers'; records read are the main
        process's own unless each writer reads the input itself."""
        counts = self.metrics.counters()
        for writer in self.writers.all:
            part = writer.report.counts
            counts += part if self.shared else dataclasses.replace(part, records_read=0)
        return counts

    def watermark(self) -> int:
        """Every record up to this one is finished, over all writers and the pipes."""
        if not self.writers.all:  # stopped before they started: only what was handled here
            return self.last_seq
        if self.shared:
            return min(w.finished(self.done_before) for w in self.writers.all)
        lows = [low for w in self.writers.all if (low := w.low()) is not None]
        return min(lows) - 1 if lows else self.last_seq

    def save(self) -> None:
        if self.checkpoint is not None:
            self._durable(self.watermark())

    def _durable(self, records_done: int) -> None:
        assert self.checkpoint is not None
        self.rejects.sync()  # the main process's own rejects; the writers synced theirs
        self.checkpoint.save(records_done)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.checkpoint_interval_s)
            if self.checkpoint is not None:  # off the event loop: fsync can take long
                await asyncio.to_thread(self._durable, self.watermark())
            if self.on_progress is not None:
                self.on_progress(self._snapshot(), self.total_bytes)

    def _snapshot(self) -> Snapshot:
        now = self.clock.now()
        counts = self._counts()
        window = self._window
        window.append((now, counts.written, counts.consumed_wcu))
        while len(window) > 2 and window[0][0] < now - 5:
            window.popleft()
        span = max(now - window[0][0], 1e-9)
        moving = len(window) > 1
        if self.shared:
            self.events.on_bytes(read=min(w.report.bytes_read for w in self.writers.all))
        return Snapshot(
            elapsed_s=now - self.metrics.started,
            records_read=counts.records_read + counts.skipped_on_resume,
            written=counts.written,
            rejected=counts.rejected,
            consumed_wcu=counts.consumed_wcu,
            rate=(counts.written - window[0][1]) / span if moving else 0.0,
            wcu_rate=(counts.consumed_wcu - window[0][2]) / span if moving else 0.0,
            throttled_requests=counts.throttled_requests,
            bytes_read=self.metrics.bytes_read,
            key_range_throttles=counts.key_range_throttles,
            skipped=counts.skipped_on_resume,
        )

    def _report(self) -> LoadReport:
        """The counts added up and the latency histograms merged, never averaged."""
        latency = Histogram()
        latency.merge(self.metrics.latency)
        for writer in self.writers.all:
            if writer.report.latency is not None:
                latency.merge(writer.report.latency)
        elapsed = self.clock.now() - self.metrics.started
        report = report_of(self._counts(), latency, elapsed, self.outcome, self.aborted)
        return dataclasses.replace(report, first_rejects=tuple(self.rejects.samples))
