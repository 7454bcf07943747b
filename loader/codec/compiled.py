"""The fast path of plain JSON → wire JSON: per record shape, a converter compiled
with `exec`, that sends exactly the bytes of the general path (codec/plain.py and
orjson) without building the AttributeValues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from loader.codec.limits import _utf8_len
from loader.codec.numbers import (
    _DECIMAL_SIZES,
    _SMALL_INT_SIZE,
    SMALL_INTS,
    Num,
    _decimal_size,
    _int_size,
)
from loader.codec.plain import _plain_value


def _converted(value: dict[str, Any], *, nested: bool) -> Any:
    """`value` through the compiled converter of its shape (compiled on first sight),
    or None for a shape that has none."""
    by_names, shapes = (_NESTED_BY_NAMES, _NESTED) if nested else (_BY_NAMES, _SHAPES)
    # The usual case: a shape seen before, found by its names alone; the converter
    # checks the value types itself and answers None when they differ.
    convert = by_names.get(tuple(value))
    if convert is not None:
        result = convert(*value.values())
        if result is not None:
            return result
    names, types = tuple(value), tuple(map(type, value.values()))
    convert = shapes.get((names, types)) or _compile(names, types, nested=nested)
    return None if convert is None else convert(*value.values())


# The converters below raise orjson.JSONEncodeError for what JSON cannot carry: the
# caller, put_entry, then takes the general path. A string needs no JSON escape (no
# quote, backslash or control character) when orjson's output is just the string in
# quotes: escaping only ever lengthens it.


def _map_text(value: dict[str, Any]) -> tuple[str, int]:
    """A nested object as `{"M":…}` wire JSON and its size."""
    result: tuple[str, int] | None = _converted(value, nested=True)
    if result is None:
        attribute, size = _plain_value(value)
        return orjson.dumps(attribute).decode(), size
    return result


def _list_text(value: list[Any]) -> tuple[str, int]:
    """A list as `{"L":…}` wire JSON and its size; lists of strings (tags, the common
    kind) without building their attribute values."""
    for element in value:
        if type(element) is not str:
            attribute, size = _plain_value(value)
            return orjson.dumps(attribute).decode(), size
    if not value:
        return '{"L":[]}', 3
    text = "".join(value)
    strings = len(text) if text.isascii() else _utf8_len(text)
    size = 3 + len(value) + strings
    if len(orjson.dumps(text)) == strings + 2:
        return '{"L":[{"S":"' + '"},{"S":"'.join(value) + '"}]}', size
    escaped = ",".join(['{"S":' + orjson.dumps(e).decode() + "}" for e in value])
    return '{"L":[' + escaped + "]}", size


# Records of a load mostly share one shape: the same attribute names, in the same order,
# with values of the same types. Per shape, a converter is compiled once: straight-line
# code that checks the value types, adds up the size (each attribute's type and its
# name's size known) and joins the wire JSON from constant pieces and the values
# themselves: no AttributeValue dicts are built for orjson to serialise, which is most
# of what the general path spends on a record. Strings go in as they are when JSON
# needs no escape in any of them (one check over all of them); otherwise each is
# escaped by orjson. Names and the constant
# pieces reach the code as closure variables, never as source text. Nested objects (a
# map attribute) get compiled converters of their own shapes.
MAX_SHAPES = 512
_SHAPES: dict[tuple[tuple[str, ...], tuple[type, ...]], Callable[..., Any]] = {}
_NESTED: dict[tuple[tuple[str, ...], tuple[type, ...]], Callable[..., Any]] = {}
# The first compiled converter of each tuple of names: found without the value types.
_BY_NAMES: dict[tuple[str, ...], Callable[..., Any]] = {}
_NESTED_BY_NAMES: dict[tuple[str, ...], Callable[..., Any]] = {}
_SCALARS = (str, int, Num, bool, type(None))
_COMPILED_TYPES = (*_SCALARS, dict, list)


def _compile(
    names: tuple[str, ...], types: tuple[type, ...], *, nested: bool
) -> Callable[..., Any] | None:
    """The converter of records of these attribute names and value types (or of a map
    attribute's value, when `nested`), compiled and cached; None for a shape the
    general path must take. For `{"PK": "p1", "price": 9.99, "stock": 3}` it is::

        def convert(v0, v1, v2):
            if type(v0) is not T0 or type(v1) is not T1 or type(v2) is not T2:
                return None
            size = 12
            s1 = _sizes.get(v1)
            size += _decimal_size(v1) if s1 is None else s1
            t2 = str(v2)
            size += _small[v2] if 0 <= v2 < 10000 else _int_size(t2)
            text = v0
            n = len(text) if text.isascii() else _utf8_len(text)
            size += n
            if len(_dumps(text)) == n + 2:
                return "".join((k0, v0, k1, v1, k2, t2, k3,)).encode(), size
            e0 = _dumps(v0).decode()
            return "".join((k4, e0, k5, v1, k6, t2, k7,)).encode(), size

    with the value types (T0…) and the constant pieces of wire JSON (k0…; the second
    set for when a string needs escapes) as closure variables.

    One function, written in the order of the code it generates: the type checks,
    size terms, constant pieces and parameters it emits must agree with one another,
    which is easier to see in one place than across helpers.
    """
    shapes, by_names = (_NESTED, _NESTED_BY_NAMES) if nested else (_SHAPES, _BY_NAMES)
    allowed = _SCALARS if nested else _COMPILED_TYPES
    if len(shapes) >= MAX_SHAPES or not all(t in allowed for t in types):
        # Too many shapes (heterogeneous input), values the general path refuses with
        # its reasons (floats, other types), or maps and lists inside a map: compiled
        # code goes one level deep, so only the general path meets deep nesting, and
        # refuses it as orjson does.
        return None
    try:
        json_names = [orjson.dumps(name).decode() for name in names]
    except orjson.JSONEncodeError:
        return None  # a name with a lone surrogate: the general path refuses it
    # In a map, each member costs one byte more, and the map itself three.
    size = 3 + len(names) if nested else 0
    lines: list[str] = []
    strings: list[str] = []
    # The wire JSON twice, as pieces: constants (str) and expressions (a 1-tuple of
    # code); the second variant has every string escaped by orjson.
    plain: list[str | tuple[str]] = ['{"M":{' if nested else '{"PutRequest":{"Item":{']
    escaped = plain[:]
    for i, kind in enumerate(types):
        size += _utf8_len(names[i])
        lead = ("," if i else "") + json_names[i] + ":"
        if kind is str:
            strings.append(f"v{i}")
            plain += [lead + '{"S":"', (f"v{i}",), '"}']
            escaped += [lead + '{"S":', (f"e{i}",), "}"]
            continue
        if kind is int:
            lines.append(f"t{i} = str(v{i})")
            lines.append(f"size += _small[v{i}] if 0 <= v{i} < {SMALL_INTS} else _int_size(t{i})")
            pieces: list[str | tuple[str]] = [lead + '{"N":"', (f"t{i}",), '"}']
        elif kind is Num:
            # Checked as a number by _decimal_size: digits, sign, point, exponent only.
            lines.append(f"s{i} = _sizes.get(v{i})")
            lines.append(f"size += _decimal_size(v{i}) if s{i} is None else s{i}")
            pieces = [lead + '{"N":"', (f"v{i}",), '"}']
        elif kind is bool:
            size += 1
            pieces = [lead + '{"BOOL":', (f"'true' if v{i} else 'false'",), "}"]
        elif kind is type(None):
            size += 1
            pieces = [lead + '{"NULL":true}']
        elif kind is dict:
            # _map_text's first step, inline: a nested shape seen before, by its names.
            lines.append(f"c = _nested.get(tuple(v{i}))")
            lines.append(f"r = None if c is None else c(*v{i}.values())")
            lines.append(f"a{i}, s{i} = _map_text(v{i}) if r is None else r; size += s{i}")
            pieces = [lead, (f"a{i}",)]
        else:
            lines.append(f"a{i}, s{i} = _list_text(v{i}); size += s{i}")
            pieces = [lead, (f"a{i}",)]
        plain += pieces
        escaped += pieces
    plain.append("}}" if nested else "}}}")
    escaped.append(plain[-1])
    constants: list[str] = []

    def joined(pieces: list[str | tuple[str]]) -> str:
        parts: list[str] = []
        for piece in pieces:
            if isinstance(piece, tuple):
                parts.append(piece[0])
            elif parts and parts[-1].startswith("k"):  # merge adjacent constants
                constants[-1] += piece
            else:
                parts.append(f"k{len(constants)}")
                constants.append(piece)
        return f'"".join(({", ".join(parts)},))' + ("" if nested else ".encode()")

    fast = joined(plain)
    body = [f"        {line}" for line in lines]
    if strings:
        body += [
            f"        text = {strings[0]}"
            if len(strings) == 1
            else f'        text = "".join(({", ".join(strings)}))',
            "        n = len(text) if text.isascii() else _utf8_len(text)",
            "        size += n",
            "        if len(_dumps(text)) == n + 2:",
            f"            return {fast}, size",
            *(f"        e{s[1:]} = _dumps({s}).decode()" for s in strings),
            f"        return {joined(escaped)}, size",
        ]
    else:
        body.append(f"        return {fast}, size")
    arguments = ", ".join(f"v{i}" for i in range(len(names)))
    checks = " or ".join(f"type(v{i}) is not T{i}" for i in range(len(names)))
    guard = f"        if {checks}:\n            return None\n" if checks else ""
    parameters = [f"T{i}" for i in range(len(names))] + [f"k{i}" for i in range(len(constants))]
    source = (
        f"def make({', '.join(parameters)}):\n"
        f"    def convert({arguments}):\n"
        f"{guard}"
        f"        size = {size}\n" + "\n".join(body) + "\n    return convert\n"
    )
    scope: dict[str, Any] = {
        "_int_size": _int_size,
        "_small": _SMALL_INT_SIZE,
        "_decimal_size": _decimal_size,
        "_sizes": _DECIMAL_SIZES,
        "_map_text": _map_text,
        "_nested": _NESTED_BY_NAMES,
        "_list_text": _list_text,
        "_utf8_len": _utf8_len,
        "_dumps": orjson.dumps,
    }
    kind_name = "map" if nested else "shape"
    exec(compile(source, f"<codec {kind_name} {len(shapes)}>", "exec"), scope)
    convert: Callable[..., Any] = scope["make"](*types, *constants)
    shapes[(names, types)] = convert
    by_names.setdefault(names, convert)
    return convert
