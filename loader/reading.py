"""Reading the input in order, with each record's number (1, 2, …) across all sources:
the number a checkpoint counts, and the order last-write-wins follows.

One reader for every way of running a job: one process reads records; a
`--processes` router reads them too, or reads raw JSON lines for the writers to
parse; a writer that reads the files itself numbers every line as they do.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import TypeVar

from loader.metrics import Subscriber
from loader.model import Record, Reject
from loader.sources import open_source
from loader.sources.jsonl import raw_lines
from loader.sources.s3 import size_of

Sources = list[tuple[str, str]]
"""(path, format name) of every input file, in order."""

Feed = AsyncGenerator[list[tuple[int, Record | Reject]], None]
"""Numbered records, in input order: from the sources, or from a router's pipe."""

NumberedLines = tuple[str, int, list[tuple[int, bytes]]]
"""Raw JSON lines of one source: its name, the record number of the first line, and
(line number, bytes) of each; the next line's record number is one more."""


T = TypeVar("T")


def _unskipped(first: int, items: list[T], skip: int, events: Subscriber) -> tuple[int, list[T]]:
    """Of `items` numbered from `first`, those a resume past `skip` does not leave out,
    with the number of the first of them; announces how many are skipped so far."""
    if first + len(items) - 1 <= skip:
        events.on_skipped(records=first + len(items) - 1)
        return first, []
    if first <= skip:
        events.on_skipped(records=skip)
        return skip + 1, items[skip - first + 1 :]
    return first, items


def name_of(path: str) -> str:
    """How rejects and errors name a source."""
    return "<stdin>" if path == "-" else path


async def numbered(
    sources: Sources, skip: int, csv_types: Mapping[str, str], events: Subscriber
) -> Feed:
    """The input's records with their numbers, past the `skip` a resume leaves out.

    Announces how far the input is read (bytes) and how many records were skipped.
    """
    seq = 0
    done_bytes = 0
    for path, fmt in sources:
        async with aclosing(open_source(path, fmt, csv_types=csv_types)) as stream:
            async for records, offset in stream:
                if offset >= 0:  # the end-of-file chunk knows no offset
                    events.on_bytes(read=done_bytes + offset)
                first, kept = _unskipped(seq + 1, records, skip, events)
                seq += len(records)
                if kept:
                    yield list(zip(range(first, seq + 1), kept, strict=True))
        done_bytes += size_of(path)


async def numbered_lines(
    sources: Sources, skip: int, events: Subscriber
) -> AsyncGenerator[NumberedLines, None]:
    """JSON-lines input as raw lines with their record numbers (blank lines are not
    records), past the `skip` a resume leaves out: numbered exactly as `numbered`
    numbers the parsed records."""
    seq = 0
    done_bytes = 0
    for path, _ in sources:
        name = name_of(path)
        async with aclosing(raw_lines(path)) as stream:
            async for lines, offset in stream:
                if offset >= 0:
                    events.on_bytes(read=done_bytes + offset)
                first, kept = _unskipped(seq + 1, lines, skip, events)
                seq += len(lines)
                if kept:
                    yield name, first, kept
        done_bytes += size_of(path)
