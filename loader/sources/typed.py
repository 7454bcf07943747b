"""DynamoDB JSON: typed items one per line (also the S3 export's `{"Item": …}` lines
and a folder of export files), and the AWS CLI's `--request-items` file."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from loader.codec import CodecError, Num, parse_json
from loader.errors import SourceError
from loader.model import Chunk, Record, Reject
from loader.sources._format import Format
from loader.sources._lines import byte_chunks, line_chunks

MAX_REQUEST_FILE_BYTES = 512 << 20
# `{"table": [` — a request file on one line, however long.
_REQUEST_START = re.compile(rb'\{\s*"(?:[^"\\]|\\.)*"\s*:\s*\[')


def is_request_file(path: str) -> bool:
    """A CLI request file (one object of table → list), not DynamoDB JSON lines."""
    opener: Any = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(64 * 1024)
    except OSError:
        return False  # the reader reports the error in its own words
    first = head.lstrip(b"\xef\xbb\xbf").lstrip().split(b"\n", 1)[0].strip()
    if first == b"{" or _REQUEST_START.match(first):
        return True
    try:
        value = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, list) for v in value.values())
    )


def request_item_tables(path: str) -> list[str]:
    """The table names a request-items file writes to (read before any write, for preflight).

    Raises:
        SourceError: the file is not a JSON object of table → list of requests.
    """
    opener: Any = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            value = json.loads(handle.read())
    except (OSError, ValueError, RecursionError) as exc:
        raise SourceError(f"{path} is not a request-items file: {exc}.", path=path) from None
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise SourceError(
            f"{path} is not a request-items file: expected {{table: [requests]}}.", path=path
        )
    return list(value)


def expand(path: str) -> list[str]:
    """A DynamoDB export folder becomes its data files, in name order; a file stays itself."""
    if path == "-" or not os.path.isdir(path):
        return [path]
    found = []
    for root, _, files in os.walk(path):
        for file in files:
            if file.startswith("manifest") or not file.endswith((".json", ".json.gz")):
                continue
            found.append(os.path.join(root, file))
    return sorted(found)


def typed_record(name: str, line: int, value: Any, text: str | bytes, table: str | None) -> Record:
    """A Record from one DynamoDB-JSON object: an item, `{"Item": …}`, or a Put/DeleteRequest.

    Raises:
        CodecError: the object is none of those.
    """
    if type(value) is not dict:
        raise CodecError("a DynamoDB-JSON line must be an object")
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "Item":
            return Record(name, line, inner, text, typed=True, table=table)
        if tag == "PutRequest":
            if type(inner) is not dict or "Item" not in inner:
                raise CodecError("PutRequest needs an Item")
            return Record(name, line, inner["Item"], text, typed=True, table=table)
        if tag == "DeleteRequest":
            if type(inner) is not dict or "Key" not in inner:
                raise CodecError("DeleteRequest needs a Key")
            return Record(name, line, inner["Key"], text, typed=True, delete=True, table=table)
    return Record(name, line, value, text, typed=True, table=table)


async def read_ddb_json(
    path: str, name: str, _types: Mapping[str, str]
) -> AsyncGenerator[Chunk, None]:
    for file in expand(path):
        label = name if file == path else file
        async with aclosing(line_chunks(file)) as stream:
            async for chunk in stream:
                out: list[Record | Reject] = []
                number = chunk.first - 1
                for raw in chunk.lines:
                    number += 1
                    try:
                        out.append(typed_record(label, number, parse_json(raw), raw, None))
                    except CodecError as exc:
                        if raw and not raw.isspace():
                            out.append(Reject(label, number, str(exc), raw))
                if out:
                    yield out, chunk.offset


async def read_request_items(
    path: str, name: str, _types: Mapping[str, str]
) -> AsyncGenerator[Chunk, None]:
    """The whole request file is one JSON document, so it is read whole (up to 512 MB)."""
    data = bytearray()
    offset = 0
    async with aclosing(byte_chunks(path)) as stream:
        async for chunk, read in stream:
            data += chunk
            offset = read
            if len(data) > MAX_REQUEST_FILE_BYTES:
                raise SourceError(f"{name} is over 512 MB: use DynamoDB JSON lines.", path=name)
    try:
        text = bytes(data).decode().removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name} is not UTF-8 (byte {exc.start}).", path=name) from None
    try:
        records = _requests(text, name)
    except (json.JSONDecodeError, CodecError, IndexError, RecursionError) as exc:
        raise SourceError(f"{name} is not a request-items file: {exc}.", path=name) from None
    yield records, offset


_decoder = json.JSONDecoder(parse_float=Num, parse_int=Num)


def _requests(text: str, name: str) -> list[Record | Reject]:
    """Walk `{table: [request, …], …}` by hand so every request keeps its line number."""
    out: list[Record | Reject] = []
    line, counted = 1, 0
    pos = _skip(text, 0)
    pos = _expect(text, pos, "{")
    while text[pos] != "}":
        table, pos = _decoder.raw_decode(text, pos)
        if type(table) is not str:
            raise CodecError("table names must be strings")
        pos = _expect(text, _skip(text, pos), ":")
        pos = _expect(text, pos, "[")
        while text[pos] != "]":
            start = pos
            value, pos = _decoder.raw_decode(text, pos)
            line += text.count("\n", counted, start)
            counted = start
            snippet = text[start:pos]
            try:
                if (
                    type(value) is not dict
                    or len(value) != 1
                    or not ("PutRequest" in value or "DeleteRequest" in value)
                ):
                    raise CodecError("each request must be a PutRequest or a DeleteRequest")
                out.append(typed_record(name, line, value, snippet, table))
            except CodecError as exc:
                out.append(Reject(name, line, str(exc), snippet))
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
        pos = _skip(text, pos + 1)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
    return out


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    if pos >= len(text):
        raise CodecError("the file ends early")
    return pos


def _expect(text: str, pos: int, char: str) -> int:
    if text[pos] != char:
        raise CodecError(f"expected {char!r} at line {text.count(chr(10), 0, pos) + 1}")
    return _skip(text, pos + 1)


# Both claim .json: a request file is told by its first line, DynamoDB JSON takes the rest.
REQUEST_ITEMS = Format(
    "request-items",
    read_request_items,
    suffixes=(".json",),
    sniff=is_request_file,
    names_tables=True,
    tables=request_item_tables,
    stdin=False,
)
DDB_JSON = Format("ddb-json", read_ddb_json, suffixes=(".json",), folders=True, expand=expand)
