"""Plain JSON → DynamoDB AttributeValue, typed-JSON checks, exact sizes, WCU and keys.

Numbers never pass through a binary float: JSON numbers are parsed into `Num`,
a `str` holding the exact decimal text, and sent to DynamoDB as that text.
Item sizes follow "DynamoDB item sizes and formats" in the developer guide,
with the number rule made exact: DynamoDB stores a number as base-100 digits
aligned on the decimal point (1.2 is 01|.20, two of them), without leading or
trailing zero pairs, plus one byte of exponent and one more when negative;
zero is one byte. Measured against DynamoDB Local at the 1 KB boundary
(tests/integration/test_sizes.py).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from loader.codec.compiled import _converted
from loader.codec.limits import (
    _TOO_DEEP,
    MAX_ITEM_BYTES,
    WCU_BYTES,
    CodecError,
    _utf8_len,
    check_size,
    wcu,
)
from loader.codec.numbers import Num, _number_key, number_size
from loader.codec.parse import _json_kind, _refusal_in, parse_json
from loader.codec.plain import AttributeValue, Item, _plain_value, from_plain
from loader.codec.typed import typed_size

__all__ = [
    "MAX_ITEM_BYTES",
    "AttributeValue",
    "CodecError",
    "Index",
    "Item",
    "KeySchema",
    "Num",
    "Request",
    "Write",
    "check_size",
    "encode",
    "from_plain",
    "number_size",
    "parse_json",
    "put_entry",
    "typed_size",
    "wcu",
]


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index, as far as write cost goes: a put that carries all of `keys`
    also writes an index entry of the projected attributes (None: all of them)."""

    name: str
    keys: tuple[str, ...]
    projected: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class KeySchema:
    """A table's primary key: attribute names and their declared types (S, N or B)."""

    table: str
    hash_name: str
    hash_type: str
    range_name: str | None = None
    range_type: str | None = None
    indexes: tuple[Index, ...] = ()

    def put_wcu(self, item: dict[str, Any], size: int, *, plain: bool = False) -> int:
        """WCU of putting a new `item` of `size` bytes: the table's, plus each index it
        is in. `item` is AttributeValues, or a plain JSON object when `plain`."""
        units = wcu(size)
        for index in self.indexes:
            if all(name in item for name in index.keys):
                if index.projected is None:
                    units += wcu(size)
                else:
                    part = {n: v for n, v in item.items() if n in index.projected}
                    units += wcu(from_plain(part)[1] if plain else typed_size(part))
        return units

    @property
    def names(self) -> tuple[str, ...]:
        return (self.hash_name,) if self.range_name is None else (self.hash_name, self.range_name)

    def key_of(self, item: Item) -> tuple[str, ...]:
        """The item's primary key as a hashable tuple, checked against the schema.

        Raises:
            CodecError: a key attribute is missing, empty or of the wrong type.
        """
        first = _key_part(item, self.hash_name, self.hash_type, 2048)
        if self.range_name is None:
            return (self.table, first)
        assert self.range_type is not None
        return (self.table, first, _key_part(item, self.range_name, self.range_type, 1024))

    def key_of_plain(self, record: dict[str, Any]) -> tuple[str, ...]:
        """`key_of` a plain JSON object: string keys short enough to be within the
        limits (the usual case) as they are, any other through its AttributeValue."""
        first = record.get(self.hash_name)
        if type(first) is not str or not first or len(first) > 512 or self.hash_type != "S":
            return self.key_of(self.plain_key(record))
        if self.range_name is None:
            return (self.table, first)
        second = record.get(self.range_name)
        if type(second) is not str or not second or len(second) > 256 or self.range_type != "S":
            return self.key_of(self.plain_key(record))
        return (self.table, first, second)

    def plain_key(self, record: dict[str, Any]) -> Item:
        """The key attributes of a plain JSON object as AttributeValues (for `key_of`)."""
        return {name: _plain_value(record[name])[0] for name in self.names if name in record}

    def project(self, item: Item) -> Item:
        """Only the key attributes of `item` (for a DeleteRequest or a BatchGetItem key)."""
        return {name: item[name] for name in self.names}


def _key_part(item: Item, name: str, kind: str, limit: int) -> str:
    value = item.get(name)
    if value is None:
        raise CodecError(f"key attribute {name!r} is missing")
    text = value.get(kind) if isinstance(value, dict) else None
    if text is None:
        found = next(iter(value), "?") if isinstance(value, dict) else type(value).__name__
        raise CodecError(f"key attribute {name!r} must be of type {kind}, got {found}")
    if kind == "N":
        # 1, 1.0 and 10E-1 are one key to DynamoDB, so they must be one key here.
        return _number_key(text)
    if text == "":
        raise CodecError(f"key attribute {name!r} is empty")
    if len(text) > limit // 4 and _key_bytes(text, kind) > limit:
        raise CodecError(f"key attribute {name!r} is over DynamoDB's {limit}-byte key limit")
    return str(text)


def _key_bytes(text: str, kind: str) -> int:
    if kind == "B":
        try:
            return len(base64.b64decode(text))
        except binascii.Error:
            return len(text)
    return _utf8_len(text)


_PUT_HEAD = b'{"PutRequest":{"Item":'
_PUT_TAIL = b"}}"


def put_entry(record: Any) -> tuple[bytes, int]:
    """The BatchWriteItem entry `{"PutRequest":{"Item":…}}` of a plain JSON object, as
    the bytes that go on the wire, and the item's size: what `from_plain` and orjson
    make of it, straight from the record's values.

    Raises:
        CodecError: not an object, or a value DynamoDB cannot store.
    """
    if type(record) is not dict:
        raise CodecError(f"a record must be a JSON object, got {_json_kind(record)}")
    try:
        result: tuple[bytes, int] | None = _converted(record, nested=False)
    except (orjson.JSONEncodeError, RecursionError):
        result = None  # the general path names the record's first fault
    if result is not None:
        return result
    # A shape without compiled code (floats and other refusals, maps in maps, too many
    # shapes), or a string JSON cannot carry.
    try:
        item, size = from_plain(record)
    except RecursionError:
        raise CodecError(_TOO_DEEP) from None
    return _PUT_HEAD + _json(item) + _PUT_TAIL, size


def _json(item: Item) -> bytes:
    """An item's wire JSON, or the CodecError of what orjson refuses in it: a lone
    surrogate (only Python callers of load() can pass one), or nesting past its 254
    levels (DynamoDB's own limit is 32)."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        raise CodecError(_refusal_in(item) or _TOO_DEEP) from None


class Request(Mapping[str, Any]):
    """One BatchWriteItem entry (`{"PutRequest": …}` or `{"DeleteRequest": …}`), held as
    the JSON bytes that go on the wire.

    Encoded once, when the record is read: a batch's body is then these bytes joined,
    and a finished batch frees 25 byte strings instead of 25 trees of small dicts.
    (Profiled on catalog items: serialising the dict trees per request and freeing them
    after were ~20% of the loader's CPU.) It still reads as the dict it encodes, for the
    few who look inside: verify, a retry's key lookup, tests.
    """

    __slots__ = ("_value", "json")

    def __init__(self, json: bytes) -> None:
        self.json = json
        self._value: dict[str, Any] | None = None

    @classmethod
    def of(cls, request: dict[str, Any]) -> Request:
        return cls(orjson.dumps(request))

    def _decoded(self) -> dict[str, Any]:
        # The bytes hold numbers as strings ({"N": "1.5"}), so this is exact.
        if self._value is None:
            self._value = orjson.loads(self.json)
        return self._value

    def __getitem__(self, name: str) -> Any:
        return self._decoded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return f"Request({self.json!r})"


@dataclass(slots=True, eq=False)
class Write:
    """One operation ready for a batch: the request entry, its key, size and cost."""

    seq: int
    source: str
    line: int
    table: str
    key: tuple[str, ...]
    request: Mapping[str, Any]
    size: int
    wcu: int
    delete: bool
    text: str | bytes


def encode(
    *,
    seq: int,
    source: str,
    line: int,
    value: Any,
    text: str | bytes,
    typed: bool,
    delete: bool,
    schema: KeySchema,
) -> Write:
    """Turn one record into a checked `Write` for `schema`'s table.

    Raises:
        CodecError: the record breaks a DynamoDB rule; the message says which.
    """
    if typed:
        try:
            size = typed_size(value)
        except RecursionError:
            raise CodecError(_TOO_DEEP) from None
        key = schema.key_of(value)
    else:
        entry, size = put_entry(value)  # checks every value, a delete's too
        key = schema.key_of_plain(value)
    if delete:
        keys = schema.project(value if typed else schema.plain_key(value))
        return Write(
            seq,
            source,
            line,
            schema.table,
            key,
            Request.of({"DeleteRequest": {"Key": keys}}),
            typed_size(keys),
            1,
            True,
            text,
        )
    if size > MAX_ITEM_BYTES:
        check_size(size)
    if schema.indexes:
        units = schema.put_wcu(value, size, plain=not typed)
    else:
        units = (size + WCU_BYTES - 1) // WCU_BYTES or 1
    if typed:
        entry = _PUT_HEAD + _json(value) + _PUT_TAIL
    return Write(seq, source, line, schema.table, key, Request(entry), size, units, False, text)
