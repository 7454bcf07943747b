"""CSV with a header row. Every cell is a string unless `--csv-type COLUMN=N|BOOL|JSON`
says otherwise; an empty cell leaves its attribute out.

The stdlib parser runs in strict mode so that an unclosed quote or text after a
closing quote is an error for that row rather than silently merged data. Rows
may span lines (quoted newlines) and chunks: the last row of every chunk is
parsed again with the next chunk, since it may have been cut short.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any

from loader.codec import MAX_ITEM_BYTES, CodecError, Num, number_size, parse_json
from loader.model import Chunk, Record, Reject
from loader.sources._format import Format
from loader.sources._lines import line_chunks

csv.field_size_limit(MAX_ITEM_BYTES + 1)

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _as_number(cell: str) -> Num:
    text = cell.strip()
    number_size(text)
    return Num(text)


def _as_bool(cell: str) -> bool:
    word = cell.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise CodecError(f"{cell!r} is not a boolean (true/false, 1/0, yes/no)")


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "N": _as_number,
    "BOOL": _as_bool,
    "JSON": parse_json,
}


async def read_csv(path: str, name: str, types: Mapping[str, str]) -> AsyncGenerator[Chunk, None]:
    converters = {col: _CONVERTERS[kind] for col, kind in types.items() if kind in _CONVERTERS}
    header: list[str] | None = None
    header_fault: str | None = None
    carry: list[tuple[int, str]] = []
    async with aclosing(line_chunks(path)) as stream:
        async for chunk in stream:
            out: list[Record | Reject] = []
            lines = carry
            carry = []
            number = chunk.first - 1
            for raw in chunk.lines:
                number += 1
                try:
                    lines.append((number, raw.decode()))
                except UnicodeDecodeError as exc:
                    out.append(Reject(name, number, f"invalid UTF-8 at byte {exc.start}", raw))
            rows = _parse(lines)
            if not chunk.last and rows:
                start = rows.pop()[0]
                carry = lines[start:]
            for start, end, row in rows:
                line, text = lines[start][0], "\n".join(t for _, t in lines[start:end])
                if isinstance(row, str):
                    out.append(Reject(name, line, row, text))
                elif not row:
                    continue
                elif header is None:
                    header = row
                    header_fault = _header_fault(row)
                elif header_fault is not None:
                    out.append(Reject(name, line, header_fault, text))
                elif len(row) != len(header):
                    reason = f"row has {len(row)} fields; the header has {len(header)}"
                    out.append(Reject(name, line, reason, text))
                else:
                    out.append(_record(name, line, text, header, row, converters))
            if out:
                # A carried-over row can follow a reject read from this chunk: keep file order.
                out.sort(key=lambda r: r.line)
                yield out, chunk.offset


def _parse(lines: list[tuple[int, str]]) -> list[tuple[int, int, list[str] | str]]:
    """Rows as (first line index, end line index, fields or the parse error)."""
    # Line ends go back in: a quoted field keeps its newlines.
    reader = csv.reader((text + "\n" for _, text in lines), strict=True)
    rows: list[tuple[int, int, list[str] | str]] = []
    consumed = 0
    while True:
        try:
            row: list[str] | str = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            row = _csv_reason(str(exc))
        rows.append((consumed, reader.line_num, row))
        consumed = reader.line_num


def _csv_reason(message: str) -> str:
    if "unexpected end of data" in message:
        return "unclosed quote: the row ends inside a quoted field"
    if "expected after" in message:
        return "malformed CSV: text after a closing quote (a quote inside a field must be doubled)"
    if "field larger than field limit" in message:
        return "malformed CSV: a field runs past 400 KB (an unclosed quote?)"
    return f"malformed CSV: {message}"


def _header_fault(header: list[str]) -> str | None:
    seen: set[str] = set()
    for column in header:
        if not column:
            return "the header has an empty column name"
        if column in seen:
            return f"the header names column {column!r} twice"
        seen.add(column)
    return None


def _record(
    name: str,
    line: int,
    text: str,
    header: list[str],
    row: list[str],
    converters: Mapping[str, Callable[[str], Any]],
) -> Record | Reject:
    value: dict[str, Any] = {}
    for column, cell in zip(header, row, strict=True):
        if cell == "":
            continue
        convert = converters.get(column)
        if convert is None:
            value[column] = cell
            continue
        try:
            value[column] = convert(cell)
        except CodecError as exc:
            return Reject(name, line, f"column {column!r}: {exc}", text)
    return Record(name, line, value, text)


FORMAT = Format("csv", read_csv, suffixes=(".csv",))
