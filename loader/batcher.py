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
from collections import deque
from collections.abc import AsyncIterator, Iterable

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


BatchQueue = asyncio.Queue[list[Write] | None]


async def batches(queue: BatchQueue) -> AsyncIterator[list[Write]]:
    """A worker's batches, until the end marker. The marker is put back for the next
    worker, so one marker ends them all, and a stop can end them with one put."""
    while (batch := await queue.get()) is not None:
        yield batch
    queue.put_nowait(None)
