"""Arrow record batches (a Spark task's rows, a Parquet file's row groups) as records,
and records of Python values as the rejects file shows them.

Each row becomes a dict of the Python values the records API maps as boto3 does, with
what Arrow has and JSON has not made exact: `decimal128`/`decimal256` arrive as
`Decimal` with every digit; a float64 becomes the `Decimal` of its shortest repr (the
number it prints as, 9.99 and not 9.9900000000000002131628...); timestamps, dates and
times become ISO-8601 strings, a UUID its usual text; a map becomes an M. A null
column is left out of its item, as DynamoDB has no "missing" but a missing attribute;
a null inside a list stays a NULL. NaN and infinity have no DynamoDB number: they stay
floats, and the codec rejects their record with the reason.

pyarrow is imported by the caller (it comes with `ddb-loader[spark]`): this module
only walks the values `to_pylist` gives.
"""

from __future__ import annotations

import base64
import datetime
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import orjson

# Arrow type ids whose Python values need no change (ints, strings, bytes, bools,
# decimals): their columns are passed through as they are, at no cost per value.
_PLAIN = ("int", "uint", "string", "large_string", "binary", "large_binary", "bool", "decimal")


def rows(batches: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Each row of each `pyarrow.RecordBatch`, as a dict without its null columns."""
    for batch in batches:
        columns = batch.schema.names
        converted = [
            values if _plain(field.type) else [_value(v) for v in values]
            for field, values in zip(batch.schema, batch.to_pydict().values(), strict=True)
        ]
        for row in zip(*converted, strict=True):
            yield {
                name: value for name, value in zip(columns, row, strict=True) if value is not None
            }


def plain_rows(values: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """Rows already in Python (Spark 4.0's `Row.asDict(recursive=True)`), mapped as
    `rows` maps a batch's."""
    for row in values:
        yield {name: _value(value) for name, value in row.items() if value is not None}


def as_text(value: Any) -> bytes:
    """A record of Python values as the rejects file shows it: JSON, numbers exact,
    bytes as base64."""
    try:
        return orjson.dumps(value, default=_jsonable)
    except TypeError:
        return repr(value).encode()  # not JSON at all: the codec refuses it with a reason


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError


def _plain(arrow_type: Any) -> bool:
    return str(arrow_type).startswith(_PLAIN)


def _value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if value and isinstance(value[0], tuple) and len(value[0]) == 2:
            # A map column: Arrow hands it over as (key, value) pairs.
            return {str(k): _value(v) for k, v in value if v is not None}
        return [_value(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return Decimal(value.days * 86_400 + value.seconds) + Decimal(value.microseconds) / 10**6
    return value
