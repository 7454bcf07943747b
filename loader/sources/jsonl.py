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
            try:
                text = raw.decode()
            except UnicodeDecodeError as exc:
                bad = raw.decode(errors="replace")
                out.append(Reject(name, number, f"invalid UTF-8 at byte {exc.start}", bad))
                continue
            if not text or text.isspace():
                continue
            try:
                out.append(Record(name, number, parse_json(text), text))
            except CodecError as exc:
                out.append(Reject(name, number, str(exc), text))
        if out:
            yield out, chunk.offset
