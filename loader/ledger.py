"""Where every write's outcome is accounted for, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from loader.batcher import Batcher
from loader.codec import Write
from loader.errors import Aborted, Outcome
from loader.metrics import Subscriber
from loader.model import Reject
from loader.rejects import RejectsFile


class Watermarks(Protocol):
    """Told as each record is finished (written or rejected), in any order."""

    def done(self, seq: int) -> None: ...


class Ledger:
    """Every write's outcome goes through here, exactly once: it announces it, frees the
    key in the batcher, moves the watermark and writes the rejects file."""

    def __init__(
        self,
        events: Subscriber,
        batcher: Batcher,
        rejects: RejectsFile,
        watermark: Watermarks,
        max_rejects: int | None,
        stop: Callable[[str, Outcome], None],
    ) -> None:
        self._events = events
        self._batcher = batcher
        self._rejects = rejects
        self._watermark = watermark
        self._max_rejects = max_rejects
        self._stop = stop
        self.rejected_count = 0
        self.released = asyncio.Event()

    def written(self, writes: list[Write]) -> None:
        self._finish(writes)

    def rejected(self, writes: list[Write], reason: str) -> None:
        for write in writes:
            self._rejects.add(write.source, write.line, reason, write.text)
        self._finish(writes)  # first: they are done even if the count stops the job
        self._count_rejects(len(writes))

    def exhausted(self, write: Write, reason: str) -> None:
        """DynamoDB kept refusing `write` for its availability, never for what it holds:
        it is no reject. The job stops, and the write stays pending (below the
        checkpoint's watermark) for `--resume`."""
        self._stop(reason, Outcome.RETRIES_EXHAUSTED)

    def reject_record(self, seq: int, reject: Reject) -> None:
        self._rejects.add(reject.source, reject.line, reject.reason, reject.record)
        self._watermark.done(seq)
        self._count_rejects(1)

    def _finish(self, writes: list[Write]) -> None:
        self._batcher.finished(writes)
        done = self._watermark.done
        for write in writes:
            done(write.seq)
        self.released.set()

    def _count_rejects(self, records: int) -> None:
        self._events.on_rejected(records=records)
        self.rejected_count += records
        if self._max_rejects is not None and self.rejected_count > self._max_rejects:
            raise Aborted(f"more than {self._max_rejects} records rejected (--max-rejects)")
