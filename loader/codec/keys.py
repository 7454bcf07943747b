"""A table's key schema: the primary key of an item, checked as DynamoDB checks it,
and what a put costs with the table's secondary indexes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from loader.codec.limits import CodecError, MissingKey, _utf8_len, wcu
from loader.codec.numbers import normal_number
from loader.codec.plain import Item, _plain_value, from_plain
from loader.codec.typed import typed_size


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
        raise MissingKey(f"key attribute {name!r} is missing", attribute=name)
    text = value.get(kind) if isinstance(value, dict) else None
    if text is None:
        found = next(iter(value), "?") if isinstance(value, dict) else type(value).__name__
        raise CodecError(f"key attribute {name!r} must be of type {kind}, got {found}")
    if kind == "N":
        # 1, 1.0 and 10E-1 are one key to DynamoDB, so they must be one key here.
        return normal_number(text)
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
