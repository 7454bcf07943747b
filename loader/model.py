"""The records that flow from the sources into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Record:
    """One input record: a plain JSON object, or a DynamoDB-JSON item or key when `typed`."""

    source: str
    line: int
    value: Any
    text: str | bytes  # the record as read, for the rejects file
    typed: bool = False
    delete: bool = False
    table: str | None = None


@dataclass(slots=True)
class Reject:
    """A record that will not be written, and why (one line of the rejects file)."""

    source: str
    line: int
    reason: str
    record: str | bytes


Chunk = tuple[list[Record | Reject], int]
"""Records in file order, and how many bytes of the (compressed) file are read so far."""
