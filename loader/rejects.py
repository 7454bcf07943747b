"""The rejects file: one JSON line per record that will not be written."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import IO

import orjson

from loader.model import Reject

RejectCallback = Callable[[Reject], None]


class RejectsFile:
    """Appends `{"source", "line", "reason", "record"}` lines; `sync` makes them durable.
    `on_reject`, if given, is handed each one as well (a library caller's own handling).

    A record that is not valid UTF-8 is shown with U+FFFD in `record` and kept
    exactly, byte for byte, in `raw_base64`, so it can be repaired and reloaded.

    Writes are buffered plain-file writes: a rejects line is rare and small, and
    it must be on disk before a checkpoint may move past its record. The file is
    created at the first reject: a job with none leaves no empty file behind.
    """

    def __init__(self, path: str | None, on_reject: RejectCallback | None = None) -> None:
        self.path = path
        self._on_reject = on_reject
        self._handle: IO[bytes] | None = None
        self.samples: list[str] = []

    def add(self, source: str, line: int, reason: str, record: str | bytes) -> None:
        if len(self.samples) < 5:
            self.samples.append(f"{source}:{line}: {reason}")
        if self.path is not None:
            if self._handle is None:
                self._handle = open(self.path, "ab")  # noqa: SIM115  (closed in close())
            text, raw = _as_text(record)
            row = {"source": source, "line": line, "reason": reason, "record": text}
            if raw is not None:
                row["raw_base64"] = base64.b64encode(raw).decode()
            self._handle.write(orjson.dumps(row) + b"\n")
        if self._on_reject is not None:  # after the file: a failing callback loses nothing
            self._on_reject(Reject(source, line, reason, record))

    def sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None


def _as_text(record: str | bytes) -> tuple[str, bytes | None]:
    """The record as text, and its exact bytes where they are not UTF-8."""
    if isinstance(record, str):
        return record, None
    try:
        return record.decode(), None
    except UnicodeDecodeError:
        return record.decode(errors="replace"), record
