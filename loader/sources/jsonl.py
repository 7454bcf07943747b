"""JSON Lines: one plain JSON object per line; blank lines are skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator

from loader.codec import CodecError, parse_json
from loader.sources import Chunk, Record, Reject
from loader.sources._lines import line_chunks


async def read_jsonl(path: str, name: str) -> AsyncIterator[Chunk]:
    async for chunk in line_chunks(path):
        out: list[Record | Reject] = []
        number = chunk.first - 1
        for raw in chunk.lines:
            number += 1
            # Bytes go straight to the parser (it checks UTF-8 itself); the raw line is
            # kept for the rejects file, decoded only if it is ever needed there.
            try:
                out.append(Record(name, number, parse_json(raw), raw))
            except CodecError as exc:
                if raw.isspace() or not raw:
                    continue
                out.append(Reject(name, number, str(exc), raw))
        if out:
            yield out, chunk.offset
