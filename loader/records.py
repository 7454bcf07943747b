"""Records from Python: dicts (or DynamoDB-JSON items) from an iterable or an async
iterable, numbered 1, 2, … as the reader numbers a file's records, so last write wins
in the order they came, and a reject names the record by its place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from loader.model import Record, Reject
from loader.reading import Feed
from loader.sources.arrow import as_text

SOURCE = "<records>"
CHUNK = 256  # records per hand-over: one await per chunk, as a file's reader does

Records = Iterable[Any] | AsyncIterable[Any]


@dataclass(frozen=True, slots=True)
class Delete:
    """Among records: delete the item with this key (a dict of the key attributes)."""

    key: dict[str, Any]


async def records_feed(
    records: Records, *, typed: bool = False, chunked: bool = False, source: str = SOURCE
) -> Feed:
    """`records` as the pipeline's numbered feed, in their order, named `source` in
    rejects. `chunked`: `records` is an async iterable of lists, each handed over as it
    comes (a writer's, which must not wait for a chunk to fill)."""
    seq = 0
    if chunked:
        assert isinstance(records, AsyncIterable)
        async for values in records:
            yield _records(list(enumerate(values, seq + 1)), typed, source)
            seq += len(values)
        return
    async for values in _chunks(records):
        yield _records(list(enumerate(values, seq + 1)), typed, source)
        seq += len(values)
        # A plain iterator never awaits: without this turn the workers would not send
        # until the dispatch queue is full, and a slow source would wait long for that.
        await asyncio.sleep(0)


async def _chunks(records: Records) -> AsyncIterator[list[Any]]:
    """`records` in lists of up to CHUNK."""
    chunk: list[Any] = []
    if isinstance(records, AsyncIterable):
        async for value in records:
            chunk.append(value)
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
    else:
        for value in records:
            chunk.append(value)
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _records(
    chunk: list[tuple[int, Any]], typed: bool, source: str
) -> list[tuple[int, Record | Reject]]:
    return [(seq, _record(source, seq, value, typed)) for seq, value in chunk]


def _record(source: str, seq: int, value: Any, typed: bool) -> Record:
    if type(value) is Delete:
        return Record(source, seq, value.key, as_text(value.key), typed=typed, delete=True)
    return Record(source, seq, value, as_text(value), typed=typed)
