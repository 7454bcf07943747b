"""Streaming byte lines from a path, a .gz path or stdin, in large chunks.

Every read is one aiofiles call for a megabyte, never one per line: a thread
hop per line would cost more than parsing the line.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

import aiofiles

from loader.errors import SourceError
from loader.sources.s3 import is_s3, object_chunks

CHUNK_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class LineChunk:
    """Whole lines (without their line ends) and the number of the first one."""

    first: int
    lines: list[bytes]
    last: bool
    offset: int  # compressed bytes consumed so far, for progress


async def _raw_chunks(path: str) -> AsyncGenerator[tuple[bytes, int], None]:
    if is_s3(path):
        async with aclosing(object_chunks(path)) as stream:
            async for chunk, offset in stream:
                yield chunk, offset
        return
    if path == "-":
        while chunk := await aiofiles.stdin_bytes.read(CHUNK_BYTES):
            yield chunk, 0
        return
    try:
        handle = await aiofiles.open(path, "rb")
    except OSError as exc:
        raise SourceError(f"Cannot open {path}: {exc.strerror}.", path=path) from None
    try:
        offset = 0
        while chunk := await handle.read(CHUNK_BYTES):
            offset += len(chunk)
            yield chunk, offset
    finally:
        await handle.close()


async def byte_chunks(path: str) -> AsyncGenerator[tuple[bytes, int], None]:
    """Decompressed chunks of `path` (gzip when it ends in .gz, zstd in .zst) with the
    bytes read so far."""
    if path.endswith(".zst"):
        async with aclosing(_zstd_chunks(path)) as stream:
            async for chunk, offset in stream:
                yield chunk, offset
        return
    if not path.endswith(".gz"):
        async with aclosing(_raw_chunks(path)) as stream:
            async for chunk, offset in stream:
                yield chunk, offset
        return
    inflater = zlib.decompressobj(wbits=31)
    async with aclosing(_raw_chunks(path)) as stream:
        async for chunk, offset in stream:
            data = chunk
            try:
                out = inflater.decompress(data)
                # Concatenated gzip members (e.g. `cat a.gz b.gz`) are one stream to users.
                while inflater.eof and inflater.unused_data:
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                    out += inflater.decompress(data)
            except zlib.error as exc:
                raise SourceError(f"{path} is not valid gzip: {exc}.", path=path) from None
            yield out, offset
    if not inflater.eof:
        raise SourceError(f"{path} ends in the middle of its gzip stream (truncated?).", path=path)


async def _zstd_chunks(path: str) -> AsyncGenerator[tuple[bytes, int], None]:
    import zstandard

    inflater = zstandard.ZstdDecompressor().decompressobj()
    async with aclosing(_raw_chunks(path)) as stream:
        async for chunk, offset in stream:
            try:
                out = inflater.decompress(chunk)
            except zstandard.ZstdError as exc:
                raise SourceError(f"{path} is not valid zstd: {exc}.", path=path) from None
            if out:
                yield out, offset


async def line_chunks(path: str) -> AsyncGenerator[LineChunk, None]:
    """Whole lines of `path`, a chunk at a time; a final line without newline is kept."""
    tail = b""
    number = 1
    head = True
    async with aclosing(byte_chunks(path)) as stream:
        async for data, offset in stream:
            if head:
                # The BOM test needs 3 bytes; a gzip stream can hand out fewer at first.
                if len(tail) + len(data) < len(BOM):
                    tail += data
                    continue
                data = (tail + data).removeprefix(BOM)
                tail = b""
                head = False
            data = tail + data
            lines = data.split(b"\n")
            tail = lines.pop()
            if b"\r" in data:  # one scan of the chunk spares a call a line where there is none
                lines = [_chomp(line) for line in lines]
            if lines:
                yield LineChunk(number, lines, False, offset)
                number += len(lines)
    if head:  # shorter than a BOM: never split above
        lines = tail.removeprefix(BOM).split(b"\n")
        tail = lines.pop()
        if lines:
            yield LineChunk(number, [_chomp(line) for line in lines], False, -1)
            number += len(lines)
    yield LineChunk(number, [_chomp(tail)] if tail else [], True, -1)


def _chomp(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line
