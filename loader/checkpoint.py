"""Durable progress for `--resume`.

The watermark is the number of leading input records that are all finished
(written or rejected). Writes finish out of order, so a record beyond a slow
one may be done while the watermark waits below it; after a crash, `--resume`
skips the watermark's records and sends the rest again. Resending a finished
put is harmless (same item), and the batcher's per-key order still holds
within the resumed run, so the table still ends with each key's last write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from typing import Any

from loader.errors import ConfigError
from loader.sources.s3 import identity

log = logging.getLogger("ddb_loader")

VERSION = 1
FINGERPRINT_BYTES = 64 * 1024


class Watermark:
    """Tracks which record numbers (1, 2, 3, …) are finished; `value` is the longest done prefix."""

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self._done: set[int] = set()

    def done(self, seq: int) -> None:
        if seq == self.value + 1:
            self.value = seq
            done = self._done
            while self.value + 1 in done:
                self.value += 1
                done.remove(self.value)
        else:
            self._done.add(seq)


def fingerprint(paths: list[str]) -> list[dict[str, Any]]:
    """What identifies the input: each file's name, size and a hash of its first 64 KB."""
    out = []
    for path in paths:
        known = identity(path) if path.startswith("s3://") else None
        if known is not None:  # an object: its size and ETag, which change with its bytes
            out.append({"path": path, "size": known[0], "head": known[1]})
            continue
        try:
            with open(path, "rb") as handle:
                head = handle.read(FINGERPRINT_BYTES)
            size = os.path.getsize(path)
        except OSError:
            head, size = b"", -1
        out.append(
            {"path": os.path.abspath(path), "size": size, "head": hashlib.sha256(head).hexdigest()}
        )
    return out


class Checkpoint:
    """A checkpoint file: which input it belongs to and how far it is finished.

    `save` may run in a thread (fsync is slow on a busy disk) while the job's last save
    runs on the event loop: saves take turns, and a value below one already saved is
    dropped, so the file never goes back.
    """

    def __init__(self, path: str, sources: list[dict[str, Any]]) -> None:
        self.path = path
        self.sources = sources
        self._lock = threading.Lock()
        self._saved = -1

    def save(self, records_done: int) -> None:
        """Write atomically: a crash leaves the old checkpoint or the new one, never half."""
        with self._lock:
            if records_done < self._saved:
                return
            tmp = f"{self.path}.tmp"
            data = {"version": VERSION, "sources": self.sources, "records_done": records_done}
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._saved = records_done

    def load(self) -> int | None:
        """Records already finished, or None when there is no checkpoint yet.

        Raises:
            ConfigError: the file is unreadable or belongs to other input.
        """
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read checkpoint {self.path}: {exc}.") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ConfigError(f"{self.path} is not a ddb-loader checkpoint.")
        if data.get("sources") != self.sources:
            raise ConfigError(
                f"Checkpoint {self.path} belongs to other input (different files, sizes or "
                "contents): remove it or point --checkpoint elsewhere."
            )
        return int(data["records_done"])


def resume_point(checkpoint: Checkpoint | None, resume: bool) -> int:
    """How many leading records a job skips: those its checkpoint says are finished, when
    it resumes (and says so).

    Raises:
        ConfigError: the checkpoint is unreadable or belongs to other input.
    """
    if checkpoint is None or not resume:
        return 0
    done = checkpoint.load()
    if done is None:
        log.warning("No checkpoint at %s yet: starting from the beginning.", checkpoint.path)
        return 0
    log.warning("Resuming: skipping the %d records already finished.", done)
    return done


def checkpoint_of(path: str | None, sources: list[tuple[str, str]]) -> Checkpoint | None:
    """The checkpoint at `path` for these input files, or None without --checkpoint."""
    return Checkpoint(path, fingerprint([p for p, _ in sources])) if path else None
