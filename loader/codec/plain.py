"""Plain JSON ↔ DynamoDB AttributeValues: a record's item and its size in bytes,
the general path that the compiled converters (codec/compiled.py) must match byte
for byte.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from loader.codec.limits import CodecError, _utf8_len
from loader.codec.numbers import _SMALL_INT_SIZE, SMALL_INTS, Num, _decimal_size, _int_size
from loader.codec.parse import _json_kind

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


def _plain_value(value: Any) -> tuple[AttributeValue, int]:
    """A plain JSON value as its AttributeValue and its size in bytes."""
    kind = type(value)
    if kind is str:
        return {"S": value}, len(value) if value.isascii() else _utf8_len(value)
    if kind is int:
        text = str(value)
        return {"N": text}, _SMALL_INT_SIZE[value] if 0 <= value < SMALL_INTS else _int_size(text)
    if kind is Num:
        text = str(value)
        return {"N": text}, _decimal_size(text)
    if kind is bool:
        return {"BOOL": value}, 1
    if value is None:
        return {"NULL": True}, 1
    if kind is dict:
        item, size = from_plain(value)
        return {"M": item}, size + 3 + len(item)  # a map costs 3, each member one more
    if kind is list:
        elements = []
        size = 3
        for element in value:
            if type(element) is str:
                elements.append({"S": element})
                size += (len(element) if element.isascii() else _utf8_len(element)) + 1
            else:
                av, element_size = _plain_value(element)
                elements.append(av)
                size += element_size + 1
        return {"L": elements}, size
    if kind is float:
        raise CodecError("binary floats are refused: pass numbers as JSON text or Decimal")
    if kind is Decimal:
        return _plain_value(Num(value))
    raise CodecError(f"cannot store a {kind.__name__}")


def from_plain(record: Any) -> tuple[Item, int]:
    """Convert a plain JSON object to a DynamoDB item and its size in bytes: the general
    path, which `put_entry` must match byte for byte.

    Raises:
        CodecError: not an object, or a value DynamoDB cannot store.
    """
    if type(record) is not dict:
        raise CodecError(f"a record must be a JSON object, got {_json_kind(record)}")
    item: Item = {}
    size = 0
    for name, value in record.items():
        item[name], value_size = _plain_value(value)
        size += value_size + _utf8_len(name)
    return item, size
