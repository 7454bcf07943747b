"""Input formats. Each source is an async iterator of lists of `Record | Reject`.

Lists, not single records: one `await` per megabyte of input keeps the event
loop's per-record cost at zero.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from loader.errors import ConfigError


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

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}


def detect_format(path: str) -> str:
    """The format `--format auto` picks for `path`, from its name (and .json, its first line).

    Raises:
        ConfigError: the name says nothing (stdin, unknown suffix).
    """
    if path != "-" and os.path.isdir(path):
        return "ddb-json"  # a DynamoDB export folder
    name = path.removesuffix(".gz")
    suffix = os.path.splitext(name)[1].lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if suffix == ".json":
        from loader.sources.typed import sniff_json

        return sniff_json(path)
    where = "standard input" if path == "-" else path
    raise ConfigError(f"Cannot tell the format of {where}: pass --format.")


def open_source(path: str, fmt: str, *, csv_types: Mapping[str, str]) -> AsyncIterator[Chunk]:
    """The records of one source, in file order."""
    name = "<stdin>" if path == "-" else path
    if fmt == "jsonl":
        from loader.sources.jsonl import read_jsonl

        return read_jsonl(path, name)
    if fmt == "csv":
        from loader.sources.csvfile import read_csv

        return read_csv(path, name, csv_types)
    from loader.sources.typed import read_ddb_json, read_request_items

    if fmt == "ddb-json":
        return read_ddb_json(path, name)
    return read_request_items(path, name)


__all__ = ["Chunk", "Record", "Reject", "detect_format", "open_source"]
