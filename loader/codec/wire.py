"""What goes on the wire: a record made a checked `Write` (`encode`), its
BatchWriteItem entry held as the JSON bytes sent (`Request`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from loader.codec.compiled import _converted
from loader.codec.keys import KeySchema
from loader.codec.limits import _TOO_DEEP, MAX_ITEM_BYTES, WCU_BYTES, CodecError, check_size
from loader.codec.parse import _json_kind, _refusal_in
from loader.codec.plain import Item, from_plain
from loader.codec.typed import typed_size

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
    and a finished batch frees 25 byte strings instead of 25 trees of small dicts,
    neither serialised per request nor freed node by node. It still reads as the dict
    it encodes, for the few who look inside: verify, a retry's key lookup, tests.
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

    Runs once a record: one function, without helpers for its steps, so that the hot
    path pays no call beyond `put_entry` (or `typed_size`) and the key.

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
