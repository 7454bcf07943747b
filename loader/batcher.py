"""Packs writes into BatchWriteItem batches, and keeps writes on one key in input order.

Ordering: a key is *busy* from the moment a write on it joins a batch until
DynamoDB has acknowledged it (or it was rejected). A later write on a busy key
waits here, in a per-key queue, and is released into the next batch only when
the earlier one is finished. So a write that came back in `UnprocessedItems`,
or that failed with a 500 after DynamoDB had applied it, is always retried
before any later write on its key is sent: the table ends with the last write.
It also keeps two operations on one key out of one batch, which DynamoDB refuses.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import AsyncIterator, Iterable

from loader.backoff import Clock
from loader.codec import Write

MAX_BATCH_OPS = 25
MAX_BATCH_BYTES = 16 * 1024 * 1024


class Batcher:
    """Holds the open batch and the writes waiting for their key to be free.

    Not thread-safe and not async: the reader calls `add`/`drain`, workers call
    `finished`, all on one event loop.
    """

    def __init__(self, *, max_ops: int = MAX_BATCH_OPS, max_bytes: int = MAX_BATCH_BYTES) -> None:
        self._max_ops = max_ops
        self._max_bytes = max_bytes
        self._open: list[Write] = []
        self._open_bytes = 0
        self._busy: set[tuple[str, ...]] = set()
        self._waiting: dict[tuple[str, ...], deque[Write]] = {}
        self._ready: list[Write] = []
        self.waiting = 0

    def add(self, write: Write) -> list[list[Write]]:
        """Take one write; return the batches that are now full."""
        full: list[list[Write]] = []
        if self._ready:
            self._pack_ready(full)
        key = write.key
        if key in self._busy:
            queue = self._waiting.get(key)
            if queue is None:
                self._waiting[key] = queue = deque()
            queue.append(write)
            self.waiting += 1
        else:
            self._busy.add(key)
            self._put(write, full)
        return full

    def finished(self, writes: Iterable[Write]) -> None:
        """Writes that are done (written or rejected): free their keys, release the next."""
        for write in writes:
            queue = self._waiting.get(write.key)
            if queue is None:
                self._busy.discard(write.key)
                continue
            self._ready.append(queue.popleft())
            self.waiting -= 1
            if not queue:
                del self._waiting[write.key]

    def drain(self) -> list[list[Write]]:
        """Everything that can be sent now: released writes, then the open batch, however small."""
        full: list[list[Write]] = []
        self._pack_ready(full)
        if self._open:
            full.append(self._close())
        return full

    @property
    def idle(self) -> bool:
        """Nothing open, released or waiting (writes in flight are the workers' business)."""
        return not (self._open or self._ready or self.waiting)

    def _pack_ready(self, full: list[list[Write]]) -> None:
        ready, self._ready = self._ready, []
        for write in ready:
            self._put(write, full)

    def _put(self, write: Write, full: list[list[Write]]) -> None:
        if self._open and self._open_bytes + write.size > self._max_bytes:
            full.append(self._close())
        self._open.append(write)
        self._open_bytes += write.size
        if len(self._open) >= self._max_ops:
            full.append(self._close())

    def _close(self) -> list[Write]:
        batch, self._open, self._open_bytes = self._open, [], 0
        return batch


class Dispatch:
    """Where workers take their batches: fresh ones from the reader (a bounded queue,
    so a slow table slows the reading), and writes coming back for a retry.

    A write DynamoDB did not take (UnprocessedItems, a throttle, a 5xx, a dropped
    connection) comes back here with a not-before time, its backoff, and the worker
    that sent it moves on to other work: one hot partition's backoff never holds a
    worker, so other keys keep flowing. The write's key stays busy in the `Batcher`
    until it is finished, so nothing later on that key overtakes it.

    Retries that are due go out first, topped up with fresh writes to a full batch
    (what a fresh batch has beyond that waits at the head of the retries), so a
    throttled table is not sent a stream of small leftover batches. Keys in one batch
    are distinct: a key has at most one write outside the `Batcher` at a time.

    Memory stays bounded: while more than `retry_limit` writes wait for a retry,
    workers take no fresh writes (nor top up with them), and the reader waits on
    the full queue.
    """

    def __init__(
        self,
        maxsize: int,
        clock: Clock,
        *,
        retry_limit: int | None = None,
        max_ops: int = MAX_BATCH_OPS,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._fresh: asyncio.Queue[list[Write]] = asyncio.Queue(maxsize)
        self._clock = clock
        self._retry_limit = retry_limit if retry_limit is not None else maxsize * max_ops
        self._max_ops = max_ops
        self._max_bytes = max_bytes
        self._retries: list[tuple[float, int, Write]] = []  # heap: (not before, seq, write)
        self._getters: deque[asyncio.Future[None]] = deque()
        self._in_flight = 0  # batches handed to workers and not yet done
        self._closed = False  # no more fresh batches will come
        self._stopped = False  # fresh batches not yet taken are dropped

    async def put(self, batch: list[Write]) -> None:
        """A fresh batch from the reader; waits while the queue is full."""
        if self._stopped:
            return  # never sent: its writes stay pending in the checkpoint
        await self._fresh.put(batch)
        self._wake(1)

    def retry(self, writes: Iterable[Write], not_before: float) -> None:
        """Writes to send again, not before the given clock time."""
        for write in writes:
            heapq.heappush(self._retries, (not_before, write.seq, write))
        self._wake(1)

    def close(self) -> None:
        """The reader is done: workers end once the retries are through too."""
        self._closed = True
        self._wake(len(self._getters))

    def stop(self) -> None:
        """Stop now: queued fresh batches are dropped (never sent, they stay pending in
        the checkpoint); batches with workers and their retries may still finish."""
        self._stopped = True
        while not self._fresh.empty():
            self._fresh.get_nowait()
        self.close()

    @property
    def hungry(self) -> bool:
        """No fresh batch waits for a worker."""
        return self._fresh.empty()

    @property
    def retries_waiting(self) -> int:
        return len(self._retries)

    async def get(self) -> list[Write] | None:
        """The next batch to send, or None when everything is through."""
        while True:
            batch = self._take()
            if batch is not None:
                self._in_flight += 1
                return batch
            if self._through:
                return None
            await self._wait()

    @property
    def _through(self) -> bool:
        """Nothing more can come: the reader is done, no batch is out, no retry waits."""
        return (
            self._closed
            and self._in_flight == 0
            and not self._retries
            and (self._stopped or self._fresh.empty())
        )

    def done(self) -> None:
        """A worker finished the batch it got (its leftovers are already back here)."""
        self._in_flight -= 1
        if self._closed and self._in_flight == 0:
            self._wake(len(self._getters))

    def _take(self) -> list[Write] | None:
        retries = self._retries
        over = len(retries) > self._retry_limit
        if retries and retries[0][0] <= self._clock.now():
            now = self._clock.now()
            batch: list[Write] = []
            size = 0
            while retries and retries[0][0] <= now and len(batch) < self._max_ops:
                write = retries[0][2]
                if batch and size + write.size > self._max_bytes:
                    break
                heapq.heappop(retries)
                batch.append(write)
                size += write.size
            if (
                len(batch) < self._max_ops
                and not self._stopped
                and not over
                and not self._fresh.empty()
            ):
                fresh = self._fresh.get_nowait()
                room = self._max_ops - len(batch)
                while fresh and room and size + fresh[0].size <= self._max_bytes:
                    write = fresh.pop(0)
                    batch.append(write)
                    size += write.size
                    room -= 1
                # The rest of the fresh batch goes first next time (due now, in input order).
                for write in fresh:
                    heapq.heappush(retries, (now, write.seq, write))
            return batch
        if self._stopped or over or self._fresh.empty():
            return None
        return self._fresh.get_nowait()

    async def _wait(self) -> None:
        """Until something may have changed: a put, a retry, the end, or the next retry due."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getters.append(woken)
        try:
            if not self._retries:
                await woken
                return
            due = asyncio.ensure_future(self._clock.sleep(self._retries[0][0] - self._clock.now()))
            try:
                await asyncio.wait((woken, due), return_when=asyncio.FIRST_COMPLETED)
            finally:
                due.cancel()
        except asyncio.CancelledError:
            if woken.done():
                self._wake(1)  # a wake-up meant for this worker goes to the next
            raise
        finally:
            if not woken.done():
                woken.cancel()
                self._getters.remove(woken)

    def _wake(self, count: int) -> None:
        while count > 0 and self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1


async def batches(dispatch: Dispatch) -> AsyncIterator[list[Write]]:
    """A worker's batches, until everything is through."""
    while (batch := await dispatch.get()) is not None:
        try:
            yield batch
        finally:
            dispatch.done()
