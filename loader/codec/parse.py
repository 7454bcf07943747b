"""JSON in, numbers exact: `parse_json` for every record, and `explain_json`, the
loader's own sentence for a record the parser refused.

Integers stay ints and every other number stays its text (`Num`), so no binary
float ever holds a value DynamoDB is sent.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from loader.codec.limits import _TOO_DEEP, CodecError
from loader.codec.numbers import Num

# msgspec hands every JSON number with a fraction or exponent to `float_hook` as its
# text, and decodes integers of any length to exact ints: no binary float ever. It is
# the faster parser; the stdlib's, with number hooks, only explains refusals.
_decode = msgspec.json.Decoder(float_hook=Num).decode


def parse_json(data: bytes | str) -> Any:
    """Parse one JSON document keeping every number exact (ints, or `Num` text).

    Raises:
        CodecError: malformed JSON, invalid UTF-8, or NaN/Infinity; the reason is
            the loader's own sentence with the byte offset (`explain_json`).
    """
    try:
        return _decode(data)
    except RecursionError:
        raise CodecError(_TOO_DEEP) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise CodecError(explain_json(data)) from None


# The stdlib decoder's messages, in our words. It only runs on a record msgspec
# refused, to say where and why in sentences no dependency's release can change.
_STDLIB_REASONS = {
    "Expecting value": "a value was expected",
    "Expecting property name enclosed in double quotes": "a quoted attribute name was expected",
    "Expecting ':' delimiter": "':' was expected",
    "Expecting ',' delimiter": "',' or a closing bracket was expected",
    "Invalid control character at": "a control character inside a string",
    "Invalid \\escape": "an invalid escape inside a string",
    "Invalid \\uXXXX escape": "an invalid \\u escape inside a string",
    "Extra data": "a second value after the record",
}


class _NotANumber(Exception):
    def __init__(self, word: str) -> None:
        self.word = word


def _refuse_constant(word: str) -> Any:
    raise _NotANumber(word)


class _IntText(str):
    __slots__ = ()


_explainer = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_IntText, parse_float=str)


def explain_json(data: bytes | str) -> str:
    """Why `data` is not a JSON record the loader accepts, with the byte offset."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    try:
        value = _explainer.decode(text)
    except RecursionError:
        return _TOO_DEEP
    except _NotANumber as exc:
        return f"{exc.word} is not a number DynamoDB can store"
    except json.JSONDecodeError as exc:
        at = len(text[: exc.pos].encode())
        if text.startswith("\ufeff", exc.pos):
            return (
                f"a byte-order mark (BOM) at byte {at}: only a file's first line may start"
                " with one (were two files joined?)"
            )
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            return f"malformed JSON at byte {at}: the record ends early (a truncated line?)"
        return f"malformed JSON at byte {at}: {_STDLIB_REASONS.get(exc.msg, 'unexpected text')}"
    return _refusal_in(value) or "malformed JSON: the parser refused it"


def _refusal_in(value: Any) -> str | None:
    """What in a value the stdlib accepts makes the fast parser refuse it."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, _IntText) and len(node) > 4300:
            return f"a number of {len(node)} digits: DynamoDB keeps 38"
        elif isinstance(node, str) and not _is_unicode(node):
            return "a string holds a lone surrogate (not Unicode text)"
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in the words of a reason."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Num) or (isinstance(value, int) and not isinstance(value, bool)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return type(value).__name__
