"""JSON Lines: one plain JSON object per line; blank lines are skipped."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing

from loader.codec import CodecError, parse_json
from loader.model import Chunk, Record, Reject
from loader.sources._format import Format
from loader.sources._lines import line_chunks


def jsonl_record(name: str, number: int, raw: bytes) -> Record | Reject:
    """One line as a Record, or a Reject saying why not.

    Bytes go straight to the parser (it checks UTF-8 itself); the raw line is kept
    for the rejects file, decoded only if it is ever needed there.
    """
    try:
        return Record(name, number, parse_json(raw), raw)
    except CodecError as exc:
        return Reject(name, number, str(exc), raw)


async def raw_lines(path: str) -> AsyncGenerator[tuple[list[tuple[int, bytes]], int]]:
    """The non-blank lines with their numbers, unparsed (for a reader that only routes)."""
    async with aclosing(line_chunks(path)) as stream:
        async for chunk in stream:
            lines = [
                (number, raw)
                for number, raw in enumerate(chunk.lines, chunk.first)
                if raw and not raw.isspace()
            ]
            if lines:
                yield lines, chunk.offset


async def read_jsonl(
    path: str, name: str, _types: Mapping[str, str]
) -> AsyncGenerator[Chunk, None]:
    async with aclosing(raw_lines(path)) as stream:
        async for lines, offset in stream:
            yield [jsonl_record(name, number, raw) for number, raw in lines], offset


FORMAT = Format("jsonl", read_jsonl, suffixes=(".jsonl", ".ndjson"), json_lines=True)
