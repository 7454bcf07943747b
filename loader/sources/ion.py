"""Amazon Ion: a stream of Ion structs, one item each, or the S3 export's `{Item: …}`
shape (DynamoDB's "Export to S3" in ION writes that, `.ion.gz`).

Values map exactly: decimals and ints of any size to N (no float on the way), blobs
to B, strings and symbols to S, bools, lists to L, structs to M, null to NULL (an Ion
export writes a NULL attribute so); a list the export annotates `$dynamodb_SS`,
`$dynamodb_NS` or `$dynamodb_BS` is that set; a timestamp becomes its ISO-8601 text,
and an Ion float the number it prints as. Values are numbered from 1 in the stream,
so a reject names its value and `--resume` skips by values.

The stream is parsed lazily (amazon-ion's `parse_eagerly=False`) in a thread, fed by
the same byte stream as the line formats (gzip, zstd, S3 ranges), so memory stays
flat. amazon-ion comes with `ddb-loader[ion]`.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import aclosing
from decimal import Decimal
from typing import Any

from loader.errors import ConfigError, SourceError
from loader.model import Chunk, Record, Reject
from loader.sources._format import Format
from loader.sources._lines import byte_chunks
from loader.sources.arrow import as_text

VALUES_PER_CHUNK = 1000
SETS = {"$dynamodb_SS", "$dynamodb_NS", "$dynamodb_BS"}


def _simpleion() -> Any:
    try:
        import amazon.ion.simpleion as simpleion
    except ImportError:
        raise ConfigError("Reading Ion needs amazon-ion: pip install 'ddb-loader[ion]'.") from None
    return simpleion


class _Bytes(io.RawIOBase):
    """The source's decompressed bytes as a file, for the parser's thread: each read
    takes the next chunk from the job's loop."""

    def __init__(self, chunks: AsyncGenerator[tuple[bytes, int], None], loop: Any) -> None:
        self._chunks = chunks
        self._loop = loop
        self._data = b""
        self.offset = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._data and not self._done:
            step = asyncio.run_coroutine_threadsafe(anext(self._chunks, None), self._loop)
            got = step.result()
            if got is None:
                self._done = True
            else:
                self._data, self.offset = got
        size = min(len(buffer), len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


async def read_ion(path: str, name: str, _types: Mapping[str, str]) -> AsyncGenerator[Chunk, None]:
    simpleion = _simpleion()
    async with aclosing(byte_chunks(path)) as chunks:
        stream = _Bytes(chunks, asyncio.get_running_loop())
        values = await asyncio.to_thread(
            lambda: iter(
                simpleion.load(io.BufferedReader(stream), single_value=False, parse_eagerly=False)
            )
        )
        number = 0
        while True:
            batch = await asyncio.to_thread(_next, values, name, number, path)
            if not batch:
                return
            number += len(batch)
            yield batch, stream.offset


def _next(values: Iterator[Any], name: str, number: int, path: str) -> list[Record | Reject]:
    """Up to VALUES_PER_CHUNK values as records (in a thread: parsing is the work)."""
    out: list[Record | Reject] = []
    try:
        for value in values:
            number += 1
            out.append(_record(name, number, value))
            if len(out) == VALUES_PER_CHUNK:
                break
    except SourceError:
        raise
    except Exception as exc:  # amazon-ion's IonException, and what a broken stream raises
        raise SourceError(
            f"{path} is not valid Ion after value {number:,}: {exc}.", path=path
        ) from None
    return out


def _record(name: str, number: int, value: Any) -> Record | Reject:
    item = _python(value)
    if not isinstance(item, dict):
        return Reject(name, number, "an Ion item must be a struct", as_text(item))
    if len(item) == 1 and isinstance(item.get("Item"), dict):
        item = item["Item"]  # the S3 export's shape
    return Record(name, number, item, as_text(item))


def _python(value: Any) -> Any:
    """Ion's value as the plain Python the records API maps (see the module)."""
    from amazon.ion.core import IonType
    from amazon.ion.simple_types import IonPyNull

    if value is None or isinstance(value, IonPyNull):  # null, and typed nulls (null.string)
        return None
    kind = getattr(value, "ion_type", None)
    if kind is IonType.STRUCT:
        return {str(k): _python(v) for k, v in value.items()}
    if kind in (IonType.LIST, IonType.SEXP):
        items = [_python(v) for v in value]
        annotations = {a.text for a in value.ion_annotations}
        return set(items) if annotations & SETS else items
    if kind is IonType.BOOL:  # an int subclass: before INT
        return bool(value)
    if kind is IonType.INT:
        return int(value)
    if kind is IonType.DECIMAL:
        return Decimal(value)
    if kind is IonType.FLOAT:
        return Decimal(repr(float(value))) if math.isfinite(value) else float(value)
    if kind is IonType.TIMESTAMP:
        return value.isoformat()
    if kind in (IonType.BLOB, IonType.CLOB):
        return bytes(value)
    if kind is IonType.SYMBOL:
        return str(value.text)
    if kind is IonType.STRING:
        return str(value)
    return value


FORMAT = Format("ion", read_ion, suffixes=(".ion",), stdin=False)
