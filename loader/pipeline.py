"""One job's stages, wired: read → prepare → batch → dispatch → write → account.

One `asyncio.TaskGroup` owns the reader, the workers and the ticker (checkpoint and
progress). The reader is the only producer: when the dispatch is full it waits, so a
slow table slows the reading and memory stays flat. Workers report each write's
outcome to the `Ledger`, which frees its key in the batcher, moves the watermark,
writes the rejects file and announces it to the job's `Events`.

A `--processes` writer process runs this same `Job`, fed by its router instead of
reading the input (`feed`), with a watermark that knows only its own records.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from contextlib import aclosing, suppress
from dataclasses import replace
from typing import Protocol

from loader.backoff import Backoff, Clock
from loader.batcher import MAX_BATCH_OPS, Batcher, Dispatch
from loader.checkpoint import Watermark, checkpoint_of, resume_point
from loader.client import DynamoClient
from loader.codec import KeySchema
from loader.config import LoadConfig
from loader.errors import Aborted, ConfigError, Outcome, SourceError, first_of
from loader.health import Health
from loader.ledger import Ledger, Watermarks
from loader.metrics import Events, LoadReport, Metrics, Snapshot, Subscriber
from loader.model import Reject
from loader.pacing import Pacer
from loader.prepare import Preparer, csv_types
from loader.reading import Feed, Sources, numbered
from loader.rejects import RejectCallback, RejectsFile
from loader.sources.s3 import size_of
from loader.writer import DryRun, Writer

ProgressCallback = Callable[[Snapshot, int], None]
"""Called about once a second with a snapshot and the input's total size in bytes (0: unknown)."""


class Worker(Protocol):
    """Takes batches from the dispatch until everything is through."""

    async def run(self, dispatch: Dispatch) -> None: ...


class Job:
    """One run of the stages. `load` sends the batches with a `Writer`; `verify` reads
    them back with its own worker, through the same reading, ordering and accounting."""

    def __init__(
        self,
        config: LoadConfig,
        client: DynamoClient,
        schemas: dict[str, KeySchema],
        sources: Sources,
        clock: Clock,
        rng: random.Random,
        on_progress: ProgressCallback | None,
        *,
        batch_ops: int = MAX_BATCH_OPS,
        worker: Callable[[Job], Worker] | None = None,
        feed: Feed | None = None,
        first: bool | None = None,  # the feed starts at the input's first record
        on_reject: RejectCallback | None = None,
        watermark: Watermarks | None = None,  # a writer process's or a library writer's
        subscribers: tuple[Subscriber, ...] = (),
        pacer: Pacer | None = None,  # a fleet's share (loader.lease), instead of the job's own
    ) -> None:
        """Build the stages, each from the ones before it. Long, and kept whole: it is
        the one place where the order the stages are wired in can be read."""
        self.config = config
        self.client = client
        self.schemas = schemas
        self.clock = clock
        self.on_progress = on_progress
        self.metrics = Metrics(clock.now())
        self.events = Events([self.metrics, *subscribers])
        self.checkpoint = checkpoint_of(config.checkpoint, sources)
        skip = 0 if feed else resume_point(self.checkpoint, config.resume)
        self._watermark = Watermark(skip)
        self.rejects = RejectsFile(config.rejects, on_reject)
        self.batcher = Batcher(max_ops=batch_ops)
        self.dispatch = Dispatch(config.queue_size, clock, max_ops=batch_ops)
        self.ledger = Ledger(
            self.events,
            self.batcher,
            self.rejects,
            watermark or self._watermark,
            config.max_rejects,
            self.request_stop,
        )
        # Only the job that reads the input from its start sees its first record.
        if first is None:
            first = feed is None and skip == 0
        self.preparer = Preparer(config, schemas, self.ledger.reject_record, first=first)
        self.feed = feed or numbered(sources, skip, csv_types(config, schemas), self.events)
        self.backoff = Backoff(config.backoff_base_s, config.backoff_cap_s, rng)
        self.pacer = pacer or Pacer(clock, fixed=config.max_wcu, adaptive=config.adaptive)
        self.worker = (worker or _default_worker)(self)
        self.total_bytes = sum(size_of(p) for p, _ in sources)
        self._stopping: str | None = None
        self._outcome = Outcome.ABORTED
        self._deadline: asyncio.Timeout | None = None

    async def run(self, stop: asyncio.Event | None = None) -> LoadReport:
        """Run to the end of the input, or until `stop` is set (then: stop reading, let the
        batches in flight finish for up to `stop_grace_s`, and report "aborted").

        Raises:
            ConfigError: the first record does not fit the table.
            SourceError: an input could not be read to its end.
            asyncio.CancelledError: stopped at once (the checkpoint is saved first).
        """
        done = asyncio.Event()
        cancelled = False
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._work(done))
                group.create_task(self._tick(done))
                if stop is not None:
                    group.create_task(self._watch(stop, done))
        except* Aborted as caught:
            if not self._stopping:
                aborted = first_of(caught)
                assert isinstance(aborted, Aborted)
                self._stopping, self._outcome = str(aborted), aborted.outcome
        except* (ConfigError, SourceError) as caught:
            self.close()
            raise first_of(caught) from None
        except* Exception as caught:
            # A bug, or a caller's own iterable failing: the checkpoint still holds only
            # what was finished, and the exception is raised as itself, not in a group.
            self.close()
            raise first_of(caught) from None
        except* asyncio.CancelledError:
            cancelled = True
        self.close()
        if cancelled:
            # Raised bare, outside `except*`, so callers see a CancelledError, not a group.
            raise asyncio.CancelledError
        now = self.clock.now()
        if self._stopping:
            report = self.metrics.report(now, self._outcome, self._stopping)
        else:
            ending = Outcome.DRY_RUN if self.config.dry_run else Outcome.OK
            report = self.metrics.report(now, ending)
        return replace(report, first_rejects=tuple(self.rejects.samples))

    def close(self) -> None:
        """Save the checkpoint (rejects first) and close the rejects file."""
        if self.checkpoint is not None:
            self._durable(self._watermark.value)
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

    def request_stop(self, why: str, outcome: Outcome = Outcome.ABORTED) -> None:
        """Stop reading now; batches already with a worker get `stop_grace_s` to finish.
        The first reason given is the job's `outcome`.

        Batches still queued are dropped: never sent, they stay pending in the
        checkpoint and a `--resume` sends them.
        """
        if self._stopping:
            return
        self._stopping, self._outcome = why, outcome
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
                await asyncio.to_thread(self._durable, self._watermark.value)
            if self.on_progress is not None:
                self.on_progress(self.metrics.snapshot(self.clock.now()), self.total_bytes)

    def _durable(self, records_done: int) -> None:
        """Save `records_done`, taken on the event loop before this runs in a thread: the
        rejects of every record below it were written by then, and are synced first."""
        assert self.checkpoint is not None
        self.rejects.sync()
        self.checkpoint.save(records_done)

    async def _read(self) -> None:
        """Prepare each record and hand its write to the batcher, in input order."""
        dispatch, batcher, ledger = self.dispatch, self.batcher, self.ledger
        prepare = self.preparer.prepare
        waiting_limit = self.config.queue_size * 25
        async with aclosing(self.feed) as stream:
            async for chunk in stream:
                if self._stopping:
                    return
                handled = 0
                try:
                    for seq, record in chunk:
                        handled += 1
                        if type(record) is Reject:
                            ledger.reject_record(seq, record)
                            continue
                        write = prepare(seq, record)  # type: ignore[arg-type]
                        if write is None:
                            continue
                        for batch in batcher.add(write):
                            await dispatch.put(batch)
                        if batcher.waiting > waiting_limit:
                            await self._drain(until_idle=False)
                        if self._stopping:
                            return
                    if dispatch.hungry:
                        # The workers have nothing to send while the next chunk is read
                        # (a slow source, a writer's trickle of puts): send what is
                        # open now rather than hold it until a batch fills.
                        for batch in batcher.drain():
                            await dispatch.put(batch)
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


def _default_worker(job: Job) -> Worker:
    if job.config.dry_run:
        return DryRun(outcomes=job.ledger, events=job.events)
    config = job.config
    return Writer(
        client=job.client,
        schemas=job.schemas,
        outcomes=job.ledger,
        events=job.events,
        pacer=job.pacer,
        backoff=job.backoff,
        clock=job.clock,
        max_retries=config.max_retries,
        health=Health(job.clock, job.events, config.give_up_after_s),
    )


__all__ = ["Feed", "Job", "ProgressCallback", "Worker"]
