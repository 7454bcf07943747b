"""DynamoDB JSON (`{"PK": {"S": "…"}, "n": {"N": "1.5"}}`): each type descriptor
checked against DynamoDB's rules, and the item's size in bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from loader.codec.limits import CodecError, _utf8_len
from loader.codec.numbers import normal_number, number_size
from loader.codec.parse import _json_kind


def _typed_size(value: Any, where: str) -> int:
    if type(value) is not dict or len(value) != 1:
        raise CodecError(f'{where}: expected one type descriptor like {{"S": ...}}, got {value!r}')
    ((kind, inner),) = value.items()
    check = _TYPED.get(kind)
    if check is None:
        raise CodecError(f"{where}: unknown type descriptor {kind!r}")
    return check(inner, where)


def _typed_s(inner: Any, where: str) -> int:
    if type(inner) is not str:
        raise CodecError(f"{where}: S must hold a string")
    return _utf8_len(inner)


def _typed_n(inner: Any, where: str) -> int:
    if type(inner) is not str:
        raise CodecError(f'{where}: N must hold the number as a string, e.g. {{"N": "42"}}')
    return number_size(inner)


def _typed_b(inner: Any, where: str) -> int:
    if type(inner) is not str:
        raise CodecError(f"{where}: B must hold base64 text")
    try:
        return len(base64.b64decode(inner, validate=True))
    except binascii.Error:
        raise CodecError(f"{where}: B is not valid base64") from None


def _typed_bool(inner: Any, where: str) -> int:
    if type(inner) is not bool:
        raise CodecError(f"{where}: BOOL must be true or false")
    return 1


def _typed_null(inner: Any, where: str) -> int:
    if inner is not True:
        raise CodecError(f"{where}: NULL must be true")
    return 1


def _typed_set(element: Callable[[Any, str], int], kind: str) -> Callable[[Any, str], int]:
    def check(inner: Any, where: str) -> int:
        if type(inner) is not list or not inner:
            raise CodecError(f"{where}: {kind} must be a non-empty list")
        size = sum(element(member, where) for member in inner)
        # 1 and 1.0 are one number: DynamoDB refuses them together in a set.
        distinct = {normal_number(m) for m in inner} if kind == "NS" else set(inner)
        if len(distinct) != len(inner):
            raise CodecError(f"{where}: {kind} holds duplicate values")
        return size

    return check


def _typed_l(inner: Any, where: str) -> int:
    if type(inner) is not list:
        raise CodecError(f"{where}: L must be a list")
    return 3 + sum(_typed_size(member, f"{where}[{i}]") + 1 for i, member in enumerate(inner))


def _typed_m(inner: Any, where: str) -> int:
    if type(inner) is not dict:
        raise CodecError(f"{where}: M must be an object")
    return 3 + sum(
        _utf8_len(name) + _typed_size(member, f"{where}.{name}") + 1
        for name, member in inner.items()
    )


_TYPED: dict[str, Callable[[Any, str], int]] = {
    "S": _typed_s,
    "N": _typed_n,
    "B": _typed_b,
    "BOOL": _typed_bool,
    "NULL": _typed_null,
    "SS": _typed_set(_typed_s, "SS"),
    "NS": _typed_set(_typed_n, "NS"),
    "BS": _typed_set(_typed_b, "BS"),
    "L": _typed_l,
    "M": _typed_m,
}


def typed_size(item: Any) -> int:
    """Check a DynamoDB-JSON item (`{"PK": {"S": "…"}, …}`) and return its size in bytes.

    Numbers inside must be strings already (DynamoDB JSON has no bare numbers).

    Raises:
        CodecError: a malformed type descriptor, with where it is.
    """
    if type(item) is not dict:
        raise CodecError(f"an item must be a JSON object, got {_json_kind(item)}")
    return sum(_utf8_len(name) + _typed_size(value, name) for name, value in item.items())
