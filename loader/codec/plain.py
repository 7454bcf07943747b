"""Plain JSON ↔ DynamoDB AttributeValues, both ways: a record's item and its size in
bytes (the general path, which the compiled converters in codec/compiled.py must match
byte for byte), a stored value back as plain data, and items compared as DynamoDB
compares them.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import orjson

from loader.codec.limits import CodecError, _utf8_len
from loader.codec.numbers import (
    _SMALL_INT_SIZE,
    SMALL_INTS,
    Num,
    _decimal_size,
    _int_size,
    normal_number,
)
from loader.codec.parse import _json_kind
from loader.codec.typed import _typed_size

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
    if kind is list or kind is tuple:
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
    # Python's own types, from records handed to the library, as boto3 maps them.
    if kind is bytes or kind is bytearray:
        return {"B": base64.b64encode(value).decode()}, len(value)
    if kind is set or kind is frozenset:
        return _set_value(value)
    raise CodecError(f"cannot store a {kind.__name__}")


def _set_value(members: set[Any] | frozenset[Any]) -> tuple[AttributeValue, int]:
    """A Python set as SS, NS or BS, checked by DynamoDB's set rules (non-empty, one
    type, no two members equal, 1 and 1.0 included)."""
    if not members:
        raise CodecError("an empty set cannot be stored: DynamoDB has no empty sets")
    kinds = {type(m) for m in members}
    if kinds <= {str}:
        value: AttributeValue = {"SS": sorted(members)}
    elif kinds <= {int, Decimal}:
        value = {"NS": [str(Num(m)) if type(m) is Decimal else str(m) for m in members]}
    elif kinds <= {bytes}:
        value = {"BS": [base64.b64encode(m).decode() for m in members]}
    else:
        names = ", ".join(sorted(k.__name__ for k in kinds))
        raise CodecError(f"a set must hold strings, numbers or bytes alone, not {names}")
    return value, _typed_size(value, "set")


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
        if type(name) is not str:
            raise CodecError(f"attribute names must be strings, not {type(name).__name__} {name!r}")
        item[name], value_size = _plain_value(value)
        size += value_size + _utf8_len(name)
    return item, size


def to_plain(value: AttributeValue) -> Any:
    """A DynamoDB value as plain JSON-ready data; numbers stay exact (raw JSON fragments)."""
    ((kind, inner),) = value.items()
    if kind == "N":
        return orjson.Fragment(inner.encode())
    if kind == "NS":
        return [orjson.Fragment(n.encode()) for n in inner]
    if kind == "M":
        return {k: to_plain(v) for k, v in inner.items()}
    if kind == "L":
        return [to_plain(v) for v in inner]
    if kind == "NULL":
        return None
    return inner  # S, B (base64 text), BOOL, SS, BS


def _canonical(value: AttributeValue) -> Any:
    """`value` in a form equal to another's exactly when DynamoDB holds the two equal."""
    ((kind, inner),) = value.items()
    if kind == "N":
        return ("N", normal_number(inner))
    if kind == "NS":
        return ("NS", frozenset(normal_number(n) for n in inner))
    if kind in ("SS", "BS"):
        return (kind, frozenset(inner))
    if kind == "L":
        return ("L", tuple(_canonical(v) for v in inner))
    if kind == "M":
        return ("M", {k: _canonical(v) for k, v in inner.items()})
    return (kind, inner)


def same_item(expected: Item, stored: Item) -> bool:
    """Equal as DynamoDB sees it: numbers by value (every one of their 38 digits), sets
    unordered."""
    if expected.keys() != stored.keys():
        return False
    return all(_canonical(expected[k]) == _canonical(stored[k]) for k in expected)
