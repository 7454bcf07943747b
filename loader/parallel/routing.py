"""Which writer process a record belongs to: a stable hash of its table and partition
key, so that every operation on one key goes through one writer, in input order."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import msgspec

from loader.codec import KeySchema, Num, normal_number
from loader.model import Record


def route(
    record: Record, default_table: str | None, schemas: Mapping[str, KeySchema], n: int
) -> int:
    """The writer process of a parsed record."""
    table = record.table or default_table or ""
    schema = schemas.get(table)
    value = record.value.get(schema.hash_name) if schema and type(record.value) is dict else None
    if type(value) is dict and len(value) == 1:  # typed: {"S": "..."}
        ((kind, value),) = value.items()
        if kind == "N":
            value = Num(value)
    return _shard(table, value, n)


def _shard(table: str, value: Any, n: int) -> int:
    if type(value) is int or type(value) is Num:
        value = normal_number(value)  # 1 and 1.0, 0 and -0 are one key: route them alike
    return zlib.crc32(f"{table}\x00{value}".encode()) % n


class KeyPeek:
    """The writer process of a raw JSON line, routed as `route` routes it parsed: msgspec
    reads only the partition key and skips the other fields without building them."""

    def __init__(self, table: str, hash_name: str, n: int) -> None:
        shape = msgspec.defstruct("Key", [("key", Any, None)], rename={"key": hash_name})
        self._decode = msgspec.json.Decoder(shape, float_hook=Num).decode
        self._table = table
        self._n = n
        self._prefix = zlib.crc32(f"{table}\x00".encode())

    def shard(self, raw: bytes) -> int:
        try:
            value = self._decode(raw).key  # type: ignore[attr-defined]
        except (msgspec.DecodeError, UnicodeDecodeError):
            return 0  # a bad line: any writer rejects it, with its reason
        if type(value) is str:  # _shard's hash, continued from the table's prefix
            return zlib.crc32(value.encode(), self._prefix) % self._n
        return _shard(self._table, value, self._n)
