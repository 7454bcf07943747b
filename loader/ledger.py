"""Where every write's outcome is accounted for, exactly once."""

from __future__ import annotations

import asyncio
from typing import Protocol

from loader.batcher import Batcher
from loader.codec import Write
from loader.errors import Aborted
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
