"""The main process's end of the writer processes: starting them, feeding their pipes,
hearing their reports, signalling and reaping them."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from loader.config import LoadConfig
from loader.errors import Aborted
from loader.parallel.child import Lease, Share, Shipped, Start, WriterReport, writer_process


@dataclasses.dataclass(slots=True)
class Writer:
    """One writer process, its two pipes, and what it last reported."""

    process: Any
    inbox: Connection  # main → writer
    outbox: Connection  # writer → main
    queue: asyncio.Queue[Shipped]
    shipped: deque[tuple[int, int]] = dataclasses.field(default_factory=deque)  # (chunk, first)
    sent_chunks: int = 0
    report: WriterReport = dataclasses.field(default_factory=WriterReport)

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

    async def ship(self, chunk: Shipped, first: int) -> None:
        """Queue `chunk`, whose lowest record is `first`, for the pipe."""
        self.shipped.append((self.sent_chunks, first))
        self.sent_chunks += 1
        await self.queue.put(chunk)


class Writers:
    """The writer processes of one job. Pipes are read and written in threads: a pipe
    that is full or empty must not hold the event loop."""

    def __init__(self, n: int) -> None:
        self.all: list[Writer] = []
        self._n = n
        self._pool = ThreadPoolExecutor(2 * n, thread_name_prefix="pipe")

    def start(
        self,
        config: LoadConfig,
        start: Start | None,
        shares: list[Share | None],
        lease: Lease | None,
    ) -> None:
        """Start one writer process per share, each running `config`."""
        context = multiprocessing.get_context("spawn")
        for share in shares:
            to_child, from_main = context.Pipe(duplex=False)
            from_child, to_main = context.Pipe(duplex=False)
            process = context.Process(
                target=writer_process,
                args=(config, to_child, to_main, start, share, lease),
                daemon=True,
            )
            process.start()
            to_child.close()
            to_main.close()
            self.all.append(Writer(process, from_main, from_child, asyncio.Queue(2)))

    async def feed(self, writer: Writer) -> None:
        """Send what is queued for `writer` down its pipe, up to the end (None).

        Raises:
            Aborted: the writer process is gone.
        """
        loop = asyncio.get_running_loop()
        while True:
            chunk = await writer.queue.get()
            try:
                await loop.run_in_executor(self._pool, writer.inbox.send_bytes, pickle.dumps(chunk))
            except OSError:
                raise Aborted("a writer process stopped early") from None
            if chunk is None:
                return

    async def listen(self, writer: Writer, heard: Callable[[], None]) -> None:
        """Take `writer`'s reports until its last one (or its death), calling `heard`
        after each."""
        loop = asyncio.get_running_loop()
        while not writer.report.final:
            try:
                data = await loop.run_in_executor(self._pool, writer.outbox.recv_bytes)
            except (EOFError, OSError):
                error = writer.report.error or "a writer process died"
                writer.report = dataclasses.replace(writer.report, final=True, error=error)
                return
            writer.report = pickle.loads(data)
            heard()

    def signal(self, how: int) -> None:
        for writer in self.all:
            if writer.process.is_alive() and writer.process.pid is not None:
                os.kill(writer.process.pid, how)

    def reap(self, grace_s: float) -> None:
        """Wait for every writer to end, killing any still alive after `grace_s`."""
        for writer in self.all:
            writer.process.join(timeout=grace_s)
            if writer.process.is_alive():
                writer.process.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)
