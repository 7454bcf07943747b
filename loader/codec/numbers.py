"""DynamoDB numbers: `Num`, the exact text of a JSON number, the rules DynamoDB holds
a number to, and its stored size.

Numbers never pass through a binary float: JSON numbers are parsed into `Num`, a
`str` holding the exact decimal text, and sent to DynamoDB as that text. The size
rule is exact: DynamoDB stores a number as base-100 digits aligned on the decimal
point (1.2 is 01|.20, two of them), without leading or trailing zero pairs, plus one
byte of exponent and one more when negative; zero is one byte. Measured against
DynamoDB Local (the "measured" cases in tests/test_codec.py).
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation

from loader.codec.limits import CodecError

MAX_DIGITS = 38
MAX_EXPONENT = 125  # 9.99…E+125 is the largest magnitude DynamoDB stores
MIN_EXPONENT = -130  # 1E-130 is the smallest non-zero magnitude


class Num(str):
    """A JSON number kept as its exact decimal text."""

    __slots__ = ()


# Two digits more than DynamoDB keeps, and the default exponent range (±999,999, far
# past DynamoDB's): Decimal's default context keeps only 28 digits, and would make
# numbers that differ in a later digit one number.
_EXACT = Context(prec=MAX_DIGITS + 2)
# What DynamoDB accepts as number text (Decimal() also takes "1_000" and " 12"; DynamoDB not).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def normal_number(number: str | int) -> str:
    """The one text of a number's value: "1" for 1, 1.0, 10E-1 and 0.1e1; "0" for 0,
    -0 and 0.000.

    DynamoDB compares numbers by value: 1 and 1.0 are one key and one set member, and
    -0 is 0. Wherever the loader asks whether two numbers are one (keys, number sets,
    comparing items, routing to a writer process) it compares these texts. Exact for
    every number DynamoDB stores: two numbers that differ only in their 38th digit
    keep different texts.

    Raises:
        decimal.InvalidOperation: `number` is not a number's text (callers pass
            numbers that `number_size` accepted, or a JSON number).
    """
    value = Decimal(number)
    return "0" if value.is_zero() else str(value.normalize(_EXACT))


def _clip(text: str, limit: int = 40) -> str:
    """A value short enough to quote in a reason (the record itself is in the rejects file)."""
    return text if len(text) <= limit else f"{text[:limit]}…"


def number_size(text: str) -> int:
    """Validate a DynamoDB number and return its stored size in bytes.

    Raises:
        CodecError: not a finite decimal, over 38 significant digits, or out of range.
    """
    if text in ("NaN", "Infinity", "-Infinity", "inf", "-inf", "nan"):
        raise CodecError(f"{text} is not a number DynamoDB can store")
    if _NUMBER.fullmatch(text) is None:
        raise CodecError(f"{_clip(text)!r} is not a number")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CodecError(f"{_clip(text)!r} is not a number") from None
    if value.is_zero():
        return 1
    sign, digits, exponent = value.as_tuple()
    text_digits = "".join(map(str, digits))
    significant = text_digits.rstrip("0")
    if len(significant) > MAX_DIGITS:
        raise CodecError(
            f"number {_clip(text)} has {len(significant)} significant digits; DynamoDB keeps 38"
        )
    magnitude = value.adjusted()
    if magnitude > MAX_EXPONENT or magnitude < MIN_EXPONENT:
        raise CodecError(f"number {_clip(text)} is out of DynamoDB's range (1E-130 to 9.9E+125)")
    assert isinstance(exponent, int)
    lowest = exponent + len(text_digits) - len(significant)
    return _pairs(lowest, magnitude) + 1 + sign


def _pairs(lowest: int, highest: int) -> int:
    """Base-100 digits spanning the powers of ten from `lowest` to `highest`."""
    return highest // 2 - lowest // 2 + 1


def _int_size(text: str) -> int:
    # Fast path for plain JSON integers, the common case in catalogs.
    negative = text[0] == "-"
    digits = text[1:] if negative else text
    if len(digits) > MAX_DIGITS:
        return number_size(text)
    significant = digits.rstrip("0")
    if not significant:
        return 1
    lowest = len(digits) - len(significant)
    return _pairs(lowest, len(digits) - 1) + 1 + negative


# Sizes of the small non-negative integers (counts, stock, dimensions: most integers in
# practice), by table lookup instead of digit arithmetic on their text.
SMALL_INTS = 10_000
_SMALL_INT_SIZE = [_int_size(str(n)) for n in range(SMALL_INTS)]


# Sizes of decimal texts already measured: prices and ratings repeat (a catalog's few
# dozen ratings, its prices to the cent), and a dict lookup is cheaper than measuring.
_DECIMAL_SIZES: dict[str, int] = {}
MAX_DECIMAL_SIZES = 1 << 14
# Past those, sizes by the text's shape: its digits 2-9 written as 1. Without an
# exponent, what DynamoDB stores (and refuses) depends only on where the zeros, the
# sign and the point are, so "67.55" and "12.31" share "11.11" and its size: a
# catalog has a few dozen shapes however many distinct prices it has.
_DECIMAL_SHAPES: dict[str, int] = {}
_SHAPE_OF = str.maketrans("23456789", "11111111")


def _decimal_size(text: str) -> int:
    """Size of a JSON number's text, remembered for up to MAX_DECIMAL_SIZES texts and
    as many shapes."""
    size = _DECIMAL_SIZES.get(text)
    if size is None:
        shape = text.translate(_SHAPE_OF)
        size = _DECIMAL_SHAPES.get(shape)
        if size is None:
            size = _measure_decimal(text)  # raises CodecError for what is not a number
            if "e" not in shape and "E" not in shape and len(_DECIMAL_SHAPES) < MAX_DECIMAL_SIZES:
                _DECIMAL_SHAPES[shape] = size
        if len(_DECIMAL_SIZES) < MAX_DECIMAL_SIZES:
            _DECIMAL_SIZES[text] = size
    return size


def _measure_decimal(text: str) -> int:
    """Size of a JSON number's text; plain decimals are measured without Decimal (hot path)."""
    negative = text[0] == "-"
    body = text[1:] if negative else text
    whole, dot, fraction = body.partition(".")
    if (
        not whole.isdigit()
        or (dot and not fraction.isdigit())
        or len(body) > MAX_DIGITS
        or not body.isascii()  # isdigit() also takes "²" and "١"
    ):
        return number_size(text)  # exponents, odd forms, long numbers: the exact path
    fraction = fraction.rstrip("0")
    whole = whole.lstrip("0")
    if not fraction:
        significant = whole.rstrip("0")
        if not significant:
            return 1
        return _pairs(len(whole) - len(significant), len(whole) - 1) + 1 + negative
    if whole:
        return _pairs(-len(fraction), len(whole) - 1) + 1 + negative
    stripped = fraction.lstrip("0")
    return _pairs(-len(fraction), len(stripped) - len(fraction) - 1) + 1 + negative
