"""Parquet: a data lake's files, read a batch of a row group at a time with pyarrow, so
memory stays bounded whatever the file's size.

Rows are numbered from 1 across the file's row groups, as a text file's lines are, so a
reject names its row and `--resume` skips by rows. Arrow's types map to DynamoDB's as
`loader.sources.arrow` says (exact decimals, nulls left out, timestamps as ISO-8601);
a column of a type with no DynamoDB counterpart (an interval, a union) stops the job
before its first write, with the column's name, rather than rejecting every row.

pyarrow comes with `ddb-loader[parquet]` (and `[spark]`); without it, one sentence.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any

from loader.errors import ConfigError, SourceError
from loader.model import Chunk, Record, Reject
from loader.sources._format import Format
from loader.sources.arrow import as_text, rows
from loader.sources.s3 import S3File, is_s3, size_of

BATCH_ROWS = 1024  # rows converted at a time; a row group may hold millions


def _parquet() -> Any:
    try:
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(
            "Reading Parquet needs pyarrow: pip install 'ddb-loader[parquet]'."
        ) from None
    return pyarrow.parquet


def check_schema(path: str) -> None:
    """Refuse a file with a column DynamoDB has no type for, naming the column.

    Raises:
        ConfigError: such a column, or pyarrow missing.
        SourceError: the file is not Parquet.
    """
    schema = _open(path).schema_arrow
    for field in schema:
        problem = _unsupported(field.type)
        if problem:
            raise ConfigError(
                f"Column {field.name!r} of {path} is {problem}, which DynamoDB has no type "
                "for: drop or cast it (e.g. to a string) before loading."
            )


def _open(path: str) -> Any:
    try:
        if is_s3(path):  # footer first, then each row group's columns: ranged GETs
            return _parquet().ParquetFile(io.BufferedReader(S3File(path), 1 << 20))
        # Not pre-buffered: that keeps whole row groups' column chunks (40 MB more by
        # 1,000,000 rows in benchmarks.memory); an object's ranges are, as GETs cost more.
        return _parquet().ParquetFile(path, pre_buffer=False)
    except ConfigError:
        raise
    except Exception as exc:  # pyarrow's ArrowInvalid, OSError: its words say which
        raise SourceError(f"Cannot read {path} as Parquet: {exc}.", path=path) from None


def _unsupported(arrow_type: Any) -> str | None:
    import pyarrow as pa
    import pyarrow.types as t

    if isinstance(arrow_type, pa.BaseExtensionType):  # a UUID: its 16 bytes, read as its text
        return _unsupported(arrow_type.storage_type)
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return _unsupported(arrow_type.value_type)
    if t.is_struct(arrow_type):
        for i in range(arrow_type.num_fields):
            problem = _unsupported(arrow_type.field(i).type)
            if problem:
                return problem
        return None
    if t.is_map(arrow_type):
        return _unsupported(arrow_type.key_type) or _unsupported(arrow_type.item_type)
    if t.is_dictionary(arrow_type):
        return _unsupported(arrow_type.value_type)
    known = (
        t.is_integer,
        t.is_floating,
        t.is_decimal,
        t.is_string,
        t.is_large_string,
        t.is_binary,
        t.is_large_binary,
        t.is_fixed_size_binary,
        t.is_boolean,
        t.is_temporal,
        t.is_null,
    )
    if any(test(arrow_type) for test in known) and not t.is_interval(arrow_type):
        return None
    return f"of type {arrow_type}"


async def read_parquet(
    path: str, name: str, _types: Mapping[str, str]
) -> AsyncGenerator[Chunk, None]:
    file = await asyncio.to_thread(_open, path)
    size = size_of(path)
    batches = file.iter_batches(batch_size=BATCH_ROWS)
    total_rows = max(1, file.metadata.num_rows)
    number = 0
    while True:
        chunk = await asyncio.to_thread(_next, batches, name, number)
        if chunk is None:
            return
        number += len(chunk)
        yield chunk, size * number // total_rows


def _next(batches: Iterator[Any], name: str, number: int) -> list[Record | Reject] | None:
    """The next batch's rows as records (in a thread: decoding is pyarrow's work)."""
    batch = next(batches, None)
    if batch is None:
        return None
    return [
        Record(name, line, row, as_text(row)) for line, row in enumerate(rows((batch,)), number + 1)
    ]


FORMAT = Format("parquet", read_parquet, suffixes=(".parquet",), stdin=False, check=check_schema)
