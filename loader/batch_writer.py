"""`Writer`: boto3's `Table.batch_writer()` in shape, a load job underneath, so no write
is dropped at exit (boto3 #2088) and many batches are in flight at once.

Each `put` or `delete` is a record of one job: batched 25 to a request, sent by the
job's workers, retried with backoff on `UnprocessedItems`, paced by what the table
accepts. The writer numbers its operations and is told as each one is finished
(written or rejected), so at exit it knows exactly which ones were not written.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from loader.api import load
from loader.config import LoadConfig
from loader.errors import ConfigError, LoaderError
from loader.metrics import LoadReport
from loader.model import Reject
from loader.records import CHUNK, Delete
from loader.rejects import RejectCallback
from loader.runtime import new_loop

T = TypeVar("T")

HELD = 4 * CHUNK  # operations held before `put` waits for the job to take some
IDLE_S = 0.05  # no operation for this long: the job sends what it holds open


class UnwrittenError(LoaderError):
    """The writer's exit could not write everything: `rejects` the service refused (with
    reasons), `unwritten` the operations the job stopped before (`report.reason` says
    why; write them again later). A send cut off past the stop grace counts as
    unwritten, though DynamoDB may have taken it."""

    def __init__(
        self, rejects: list[Reject], unwritten: list[Any], report: LoadReport | None, why: str = ""
    ) -> None:
        parts = [f"{len(rejects)} rejected"] if rejects else []
        if unwritten:
            why = why or (report.reason or report.outcome.value if report else "")
            parts.append(f"{len(unwritten)} not written ({why})")
        super().__init__(f"The writer could not write everything: {', '.join(parts)}.")
        self.rejects = rejects
        self.unwritten = unwritten
        self.report = report


class Writer:
    """`async with Writer(config) as w: await w.put(item); await w.delete(key)`.

    `put` and `delete` return once the operation is held (they wait while the job is
    `HELD` behind). Exit waits until every operation is written, also when the body
    raised; then raises `UnwrittenError` if any was not, else sets `report`.
    """

    def __init__(
        self, config: LoadConfig, *, typed: bool = False, on_reject: RejectCallback | None = None
    ) -> None:
        self._config = config
        self._typed = typed
        self._on_reject = on_reject
        self._held: deque[Any] = deque()
        self._pending: dict[int, Any] = {}  # handed to the job, not yet finished
        self._rejects: list[Reject] = []
        self._seq = 0
        self._closed = False
        self._ready = asyncio.Event()  # operations are held, or the writer closed
        self._taken = asyncio.Event()  # the job took some
        self._job: asyncio.Task[LoadReport] | None = None
        self.report: LoadReport | None = None
        self.unwritten: list[Any] = []  # at exit: what was not written, as it was given
        self._callback_failed: Exception | None = None
        self._stop = asyncio.Event()  # a cancelled exit: stop, letting sends under way finish

    async def __aenter__(self) -> Writer:
        self._job = asyncio.create_task(
            load(
                self._config,
                records=self._operations(),
                typed=self._typed,
                on_reject=self._rejected,
                watermark=self,
                chunked=True,
                stop=self._stop,
            )
        )
        return self

    async def put(self, item: dict[str, Any]) -> None:
        """Write `item` (a dict, as `load` takes records)."""
        await self._hold(item)

    async def delete(self, key: dict[str, Any]) -> None:
        """Delete the item with this key (a dict of the key attributes)."""
        await self._hold(Delete(key))

    async def _hold(self, operation: Any) -> None:
        job = self._running()
        while len(self._held) >= HELD:
            self._taken.clear()
            taken = asyncio.ensure_future(self._taken.wait())
            await asyncio.wait((taken, job), return_when=asyncio.FIRST_COMPLETED)
            taken.cancel()
            job = self._running()
        self._held.append(operation)
        self._ready.set()

    def _running(self) -> asyncio.Task[LoadReport]:
        """The job, while it runs; once it has ended, why, with what it did not write.

        Raises:
            RuntimeError: the writer is not open.
            UnwrittenError: the job stopped (or failed) with writes not made.
            ConfigError: the job could not start (a missing table): nothing was written.
        """
        job = self._job
        if job is None or self._closed:
            raise RuntimeError("The writer is not open: use it inside `async with`.")
        if not job.done():
            return job
        failure = None if job.cancelled() else job.exception()
        unwritten = self._unwritten()
        if failure is not None and (_before_any_write(failure) or not unwritten + self._rejects):
            raise failure
        report = None if failure is not None else job.result()
        why = "" if failure is None else str(failure) or type(failure).__name__
        raise UnwrittenError(self._rejects, unwritten, report, why) from failure

    def _unwritten(self) -> list[Any]:
        return [*self._pending.values(), *self._held]

    async def _operations(self) -> AsyncIterator[list[Any]]:
        """What the job reads: the held operations, as many as are there at once; an
        empty list now and then while none come, so that what the job holds open (a
        batch not full, a later write of a busy key) goes out without waiting for more."""
        while True:
            while not self._held and not self._closed:
                self._ready.clear()
                try:
                    await asyncio.wait_for(self._ready.wait(), IDLE_S)
                except TimeoutError:
                    yield []
            if not self._held:
                return
            chunk = [self._held.popleft() for _ in range(min(CHUNK, len(self._held)))]
            for operation in chunk:
                self._seq += 1
                self._pending[self._seq] = operation
            self._taken.set()
            yield chunk

    def done(self, seq: int) -> None:
        """The job finished operation `seq` (written or rejected)."""
        del self._pending[seq]

    def _rejected(self, reject: Reject) -> None:
        self._rejects.append(reject)
        if self._on_reject is not None and self._callback_failed is None:
            try:
                self._on_reject(reject)
            except Exception as failure:  # the caller's bug: it stops no write, exit says it
                self._callback_failed = failure

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._job is not None
        self._closed = True
        self._ready.set()
        try:
            report = await asyncio.shield(self._job)
        except asyncio.CancelledError as cancelled:
            # Stop the job the clean way: the requests under way get their answers, so
            # `unwritten` is exactly what was not made (within the job's stop grace; a
            # second cancel cuts that short, and what was under way counts as unwritten).
            self._stop.set()
            try:
                await asyncio.wait([self._job])
            finally:
                if not self._job.done():
                    self._job.cancel()
                self.unwritten = self._unwritten()
                if self.unwritten:
                    cancelled.add_note(f"{len(self.unwritten)} writes not made: writer.unwritten")
            raise
        except BaseException as failure:
            self.unwritten = self._unwritten()
            if failure is exc or (exc is not None and exc.__cause__ is failure):
                return  # the body met it already, in `put`
            if not _before_any_write(failure) and (self.unwritten or self._rejects):
                why = str(failure) or type(failure).__name__
                raise UnwrittenError(self._rejects, self.unwritten, None, why) from failure
            raise
        self.report = report
        self.unwritten = self._unwritten()
        if not (self._rejects or self.unwritten):
            return
        error = UnwrittenError(self._rejects, self.unwritten, report)
        if exc is None:
            raise error from self._callback_failed
        # The body's own exception goes on; what it leaves unwritten must not go unsaid.
        exc.add_note(f"{error} They are in writer.unwritten and writer.rejects.")

    async def settle(self) -> None:
        """Wait until the job has ended (a cancelled exit cancels it); set `unwritten`."""
        if self._job is not None:
            await asyncio.wait([self._job])
        self.unwritten = self._unwritten()

    @property
    def rejects(self) -> list[Reject]:
        """The writes the service refused, with reasons (so far, and at exit all)."""
        return self._rejects


def _before_any_write(failure: BaseException) -> bool:
    """A configuration error: the job stopped before it wrote anything (a missing table)."""
    return isinstance(failure, ConfigError)


class SyncWriter:
    """`Writer` for code without an event loop (scripts, notebooks)::

        with SyncWriter(config) as w:
            w.put(item)

    The writer runs on an event loop of its own in a thread; `put` and `delete` block
    while it is far behind, and the exit blocks until every write is made, as the
    async writer's does.
    """

    def __init__(
        self, config: LoadConfig, *, typed: bool = False, on_reject: RejectCallback | None = None
    ) -> None:
        self._writer = Writer(config, typed=typed, on_reject=on_reject)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def report(self) -> LoadReport | None:
        return self._writer.report

    @property
    def unwritten(self) -> list[Any]:
        return self._writer.unwritten

    @property
    def rejects(self) -> list[Reject]:
        return self._writer.rejects

    def __enter__(self) -> SyncWriter:
        self._loop = new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._writer.__aenter__())
        return self

    def put(self, item: dict[str, Any]) -> None:
        """Write `item`."""
        self._call(self._writer.put(item))

    def delete(self, key: dict[str, Any]) -> None:
        """Delete the item with this key."""
        self._call(self._writer.delete(key))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._loop is not None
        assert self._thread is not None
        try:
            self._call(self._writer.__aexit__(exc_type, exc, traceback), exiting=True)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T], *, exiting: bool = False) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("The writer is not open: use it inside `with`.")
        call = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return call.result()
        except KeyboardInterrupt:
            # Ctrl-C in a put stops the puts; the exit then writes what was put. Ctrl-C
            # in the exit stops the job too: wait until it has, so that `unwritten` is
            # exact and the loop stops with nothing left running on it.
            call.cancel()
            if exiting:
                asyncio.run_coroutine_threadsafe(self._writer.settle(), self._loop).result()
            raise
