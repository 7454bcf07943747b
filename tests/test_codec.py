"""The codec: exact numbers, DynamoDB's value rules, item sizes, WCU and keys.

Sizes and number rules marked "measured" were checked against DynamoDB Local.
"""

from __future__ import annotations

import base64
import contextlib
import re
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.codec import (
    MAX_ITEM_BYTES,
    CodecError,
    Index,
    Item,
    KeySchema,
    Num,
    Request,
    check_size,
    compiled,
    encode,
    from_plain,
    normal_number,
    number_size,
    numbers,
    parse,
    parse_json,
    put_entry,
    same_item,
    to_plain,
    typed_size,
    wcu,
)


def plain(text: str) -> Item:
    """The DynamoDB item of one line of plain JSON (and the wire bytes agree with it)."""
    item, size = from_plain(parse_json(text))
    assert put_entry(parse_json(text)) == (wire(item), size)
    return item


def plain_size(text: str) -> int:
    return from_plain(parse_json(text))[1]


def wire(item: Item) -> bytes:
    """What the general path sends: the PutRequest entry of `item`, by orjson."""
    return b'{"PutRequest":{"Item":' + orjson.dumps(item) + b"}}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- exact numbers (invariant 3) -------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "12345678901234567890123456789012345678",
        "-12345678901234567890123456789012345678",
        "0.1",
        "0.2",
        "0.30000000000000004",
        "1.10",
        "1E+10",
        "2.5e-7",
        "-0.000001",
        "9007199254740993",  # 2**53 + 1: the first integer a double cannot hold
    ],
)
def test_a_json_number_reaches_dynamodb_as_its_exact_text(number: str) -> None:
    document = f'{{"n": {number}}}'
    for data in (document, document.encode()):  # the parser takes str and raw line bytes
        parsed = parse_json(data)["n"]
        if any(c in number for c in ".eE"):
            # A fraction or exponent stays its exact text.
            assert type(parsed) is Num
            assert parsed == number
        else:
            # An integer of any length is an exact int, never a float.
            assert type(parsed) is int
            assert str(parsed) == number
        assert from_plain(parse_json(data))[0]["n"] == {"N": number}


def test_thirty_eight_digit_number_survives_from_plain() -> None:
    parsed = parse_json(b'{"n": 12345678901234567890123456789012345678}')["n"]
    assert type(parsed) is int
    assert parsed == 12345678901234567890123456789012345678
    item = plain('{"n": 12345678901234567890123456789012345678}')
    assert item["n"] == {"N": "12345678901234567890123456789012345678"}


def test_numbers_in_lists_and_maps_keep_their_text_too() -> None:
    item = plain('{"m": {"price": 0.1, "tags": [0.2, 1e2]}}')
    assert item["m"] == {"M": {"price": {"N": "0.1"}, "tags": {"L": [{"N": "0.2"}, {"N": "1e2"}]}}}


def test_a_huge_exponent_is_kept_as_text_and_refused_rather_than_becoming_inf() -> None:
    parsed = parse_json('{"n": 1e400}')["n"]
    assert type(parsed) is Num
    assert parsed == "1e400"
    with pytest.raises(CodecError, match="out of DynamoDB's range"):
        from_plain(parse_json('{"n": 1e400}'))


# --- one text per number: keys, number sets, comparisons and routing --------------

# Two numbers DynamoDB keeps apart: they differ only in their 38th significant digit.
THIRTY_EIGHT_DIGITS = "1234567890123456789012345.6789012345678"
ITS_NEIGHBOUR = "1234567890123456789012345.6789012345679"


@pytest.mark.parametrize(
    "spellings",
    [
        ["1", "1.0", "10E-1", "0.1e1", "+1", "1.000", "100e-2", 1],
        ["0", "-0", "0.000", "0E+5", "-0.0e-3", 0],
        ["-1.5", "-15E-1", "-1.50"],
        [
            THIRTY_EIGHT_DIGITS,
            THIRTY_EIGHT_DIGITS + "0",
            "12345678901234567890123456789012345678E-13",
        ],
        ["1E-130", "0.1E-129", "10E-131"],  # the smallest magnitude DynamoDB stores
        [
            "9.9999999999999999999999999999999999999E+125",
            "99999999999999999999999999999999999999E+88",
        ],
    ],
)
def test_equal_numbers_have_one_normal_text(spellings: list[str | int]) -> None:
    assert len({normal_number(spelling) for spelling in spellings}) == 1


def test_numbers_that_differ_only_in_the_38th_digit_have_different_normal_texts() -> None:
    # Decimal.normalize() in the default 28-digit context makes these one number.
    assert normal_number(THIRTY_EIGHT_DIGITS) != normal_number(ITS_NEIGHBOUR)


@st.composite
def dynamodb_numbers(draw: st.DrawFn) -> tuple[str, int, int]:
    """A number DynamoDB stores, as (sign, significand, exponent): up to 38 digits, its
    magnitude from 1E-130 to 9.9…E+125."""
    significand = draw(st.integers(min_value=1, max_value=10**38 - 2))
    magnitude = draw(st.integers(min_value=-130, max_value=125))
    return draw(st.sampled_from(["", "-"])), significand, magnitude - len(str(significand)) + 1


@settings(max_examples=300, deadline=None)
@given(dynamodb_numbers(), st.integers(min_value=0, max_value=5))
def test_every_spelling_of_a_number_has_one_normal_text_and_the_next_number_another(
    number: tuple[str, int, int], zeros: int
) -> None:
    sign, significand, exponent = number
    text = f"{sign}{significand}E{exponent}"
    number_size(text)  # one DynamoDB stores
    respelt = f"{sign}{significand}{'0' * zeros}E{exponent - zeros}"
    plain_text = f"{Decimal(text):f}"
    assert normal_number(text) == normal_number(respelt) == normal_number(plain_text)
    assert Decimal(normal_number(text)) == Decimal(text)  # the same value, not a rounding
    assert normal_number(f"{sign}{significand + 1}E{exponent}") != normal_number(text)


# --- value types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("json_value", "attribute"),
    [
        ('"hi"', {"S": "hi"}),
        ('""', {"S": ""}),
        ("42", {"N": "42"}),
        ("-7", {"N": "-7"}),
        ("true", {"BOOL": True}),
        ("false", {"BOOL": False}),
        ("null", {"NULL": True}),
        ("[]", {"L": []}),
        ("{}", {"M": {}}),
        ('[1, "a", [true]]', {"L": [{"N": "1"}, {"S": "a"}, {"L": [{"BOOL": True}]}]}),
        (
            '{"a": {"b": null, "c": [false]}}',
            {"M": {"a": {"M": {"b": {"NULL": True}, "c": {"L": [{"BOOL": False}]}}}}},
        ),
    ],
)
def test_plain_json_values_map_to_their_dynamodb_types(
    json_value: str, attribute: dict[str, Any]
) -> None:
    assert plain(f'{{"v": {json_value}}}') == {"v": attribute}


@pytest.mark.parametrize(("value", "attribute"), [(True, {"BOOL": True}), (False, {"BOOL": False})])
def test_a_python_bool_from_code_stays_bool_and_is_not_turned_into_a_number(
    value: bool, attribute: dict[str, Any]
) -> None:
    assert from_plain({"v": value})[0] == {"v": attribute}


@pytest.mark.parametrize(
    ("value", "text"),
    [(7, "7"), (-12, "-12"), (Decimal("1.50"), "1.50"), (Decimal("1E+5"), "1E+5")],
)
def test_ints_and_decimals_from_code_become_exact_numbers(value: Any, text: str) -> None:
    assert from_plain({"v": value})[0] == {"v": {"N": text}}


# --- what DynamoDB would refuse -----------------------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_with_a_reason(constant: str) -> None:
    document = f'{{"n": {constant}}}'
    for data in (document, document.encode()):
        with pytest.raises(CodecError, match=f"^{constant} is not a number DynamoDB can store$"):
            parse_json(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"a": 1,}', "malformed JSON at byte 8: a quoted attribute name was expected"),
        (b'{"a": 1} x', "malformed JSON at byte 9: a second value after the record"),
        (b'{"a" 1}', "malformed JSON at byte 5: ':' was expected"),
        (b'{"a": x}', "malformed JSON at byte 6: a value was expected"),
        ('{"é": x}'.encode(), "malformed JSON at byte 7: a value was expected"),  # bytes, not chars
        (b'{"a": "\\q"}', "malformed JSON at byte 7: an invalid escape inside a string"),
        (b'{"a": "\x01"}', "malformed JSON at byte 7: a control character inside a string"),
        (b"\xff", "invalid UTF-8 at byte 0"),
        (b'{"a": "caf\xc3"}', "invalid UTF-8 at byte 10"),
        (b'{"caf\xc3": 1}', "invalid UTF-8 at byte 5"),
        (b'{"a": "\\ud800"}', "a string holds a lone surrogate (not Unicode text)"),
        (b"[" + b"9" * 5000 + b"]", "a number of 5000 digits: DynamoDB keeps 38"),
        (
            b'\xef\xbb\xbf{"a": 1}',
            "a byte-order mark (BOM) at byte 0: only a file's first line may start with one"
            " (were two files joined?)",
        ),
    ],
)
def test_a_refused_record_gets_the_loaders_own_sentence_with_the_byte_offset(
    data: bytes, reason: str
) -> None:
    with pytest.raises(CodecError) as caught:
        parse_json(data)
    assert str(caught.value) == reason


def test_the_reason_does_not_come_from_the_parsers_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a msgspec release says, the rejects file says the same."""
    expected = {}
    samples = [b'{"a": 1,}', b'{"a": "caf\xc3"}', b'{"n": NaN}', b'{"a": 1', b"\xef\xbb\xbf{}"]
    for data in samples:
        with pytest.raises(CodecError) as caught:
            parse_json(data)
        expected[data] = str(caught.value)

    def reworded(data: bytes | str) -> Any:
        raise msgspec.DecodeError("Some new wording (at offset 1)")

    monkeypatch.setattr(parse, "_decode", reworded)
    for data in samples:
        with pytest.raises(CodecError) as caught:
            parse_json(data)
        assert str(caught.value) == expected[data]


@pytest.mark.parametrize("text", ['{"a": 1', '{"a": "x', '{"a": [1, 2', '{"a": "x}'])
def test_a_record_cut_short_says_it_ends_early(text: str) -> None:
    with pytest.raises(CodecError, match=r"^malformed JSON at byte \d+: the record ends early"):
        parse_json(text.encode())


@pytest.mark.parametrize(
    "number",
    [
        "123456789012345678901234567890123456789",  # 39 significant digits
        "-123456789012345678901234567890123456789",
        "1.23456789012345678901234567890123456789",
        "1234567890123456789012345678901234567890",  # 40 digits, 39 significant
    ],
)
def test_more_than_38_significant_digits_are_refused(number: str) -> None:
    with pytest.raises(CodecError, match="39 significant digits; DynamoDB keeps 38"):
        from_plain(parse_json(f'{{"n": {number}}}'))


def test_trailing_zeros_do_not_count_as_significant_digits() -> None:
    number = "1" + "0" * 40
    assert plain(f'{{"n": {number}}}') == {"n": {"N": number}}


@pytest.mark.parametrize("number", ["1E+126", "-1E+126", "1E-131", "-1E-131", "1e400", "1e-400"])
def test_numbers_outside_dynamodbs_range_are_refused(number: str) -> None:
    with pytest.raises(CodecError, match="out of DynamoDB's range"):
        number_size(number)


@pytest.mark.parametrize(
    "number", ["9.9999999999999999999999999999999999999E+125", "1E+125", "1E-130", "-1E-130"]
)
def test_numbers_at_the_edges_of_the_range_are_accepted(number: str) -> None:
    assert number_size(number) >= 2


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[1, 2]", "an array"),
        ("42", "a number"),
        ('"text"', "a string"),
        ("null", "null"),
        ("true", "a boolean"),
    ],
)
def test_a_record_that_is_not_an_object_is_refused_naming_what_it_is(text: str, kind: str) -> None:
    with pytest.raises(CodecError, match=f"a record must be a JSON object, got {kind}"):
        from_plain(parse_json(text))


@pytest.mark.parametrize("record", [{"x": 0.5}, {"x": [1, 0.5]}, {"x": {"y": 1e3}}])
def test_binary_floats_from_code_are_refused_wherever_they_are(record: dict[str, Any]) -> None:
    with pytest.raises(CodecError, match="binary floats are refused"):
        from_plain(record)


def test_a_python_type_with_no_dynamodb_form_is_refused() -> None:
    with pytest.raises(CodecError, match="cannot store a complex"):
        from_plain({"x": 1j})


def test_python_bytes_sets_and_tuples_take_boto3_s_forms_and_sizes() -> None:
    item, size = from_plain(
        {
            "b": b"\x00\x01",
            "ss": {"y", "x"},
            "ns": {1, Decimal("2.50")},
            "bs": {b"a"},
            "t": (1, "a"),
        }
    )
    assert item["b"] == {"B": "AAE="}
    assert item["ss"] == {"SS": ["x", "y"]}
    assert sorted(item["ns"]["NS"]) == ["1", "2.50"]
    assert item["bs"] == {"BS": ["YQ=="]}
    assert item["t"] == {"L": [{"N": "1"}, {"S": "a"}]}
    # names 1+2+2+2+1, B 2, SS 2, NS 2+3 (digits, +1), BS 1, L 3 + (2+1) + (1+1)
    assert size == 8 + 2 + 2 + 5 + 1 + 8


@pytest.mark.parametrize(
    ("members", "reason"),
    [(set(), "empty set"), ({1, "a"}, "alone, not int, str"), ({True}, "alone, not bool")],
)
def test_a_set_dynamodb_cannot_hold_is_refused(members: set[Any], reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        from_plain({"s": members})


@pytest.mark.parametrize("text", ["1_000", " 12", "12 "])
def test_number_text_that_dynamodb_refuses_is_rejected_before_sending(text: str) -> None:
    # Decimal() accepts these; DynamoDB Local refuses them (ValidationException).
    with pytest.raises(CodecError, match="is not a number"):
        number_size(text)


# --- number sizes (measured) --------------------------------------------------------

MEASURED_NUMBER_BYTES = [
    ("1", 2),
    ("12", 2),
    ("123", 3),
    ("1234", 3),
    ("12345", 4),
    ("123456", 4),
    ("1234567", 5),
    ("0.1", 2),
    ("0.12", 2),
    ("0.123", 3),
    ("1.2", 3),
    ("12.3", 3),
    ("1.23", 3),
    ("0.01", 2),
    ("0.001", 2),
    ("100", 2),
    ("1000", 2),
    ("10000", 2),
    ("-1", 3),
    ("-12", 3),
    ("-123", 4),
    ("-12345", 5),
    ("0", 1),
    ("-0.5", 3),
    ("1E+10", 2),
    ("1.5E+3", 2),
    ("123456789012345678901234567890123456", 19),
    ("1234567890123456789012345678901234567", 20),
]


@pytest.mark.parametrize(("text", "size"), MEASURED_NUMBER_BYTES)
def test_number_size_matches_dynamodb(text: str, size: int) -> None:
    assert number_size(text) == size


@pytest.mark.parametrize(("text", "size"), MEASURED_NUMBER_BYTES)
def test_a_plain_json_number_costs_its_measured_size(text: str, size: int) -> None:
    assert plain_size(f'{{"n": {text}}}') == len("n") + size


@pytest.mark.parametrize(
    "integer",
    [
        "0",
        "-0",
        "7",
        "-7",
        "10",
        "120",
        "1200",
        "-1000",
        "99",
        "100",
        "101",
        "10101",
        "12345678901234567890123456789012345678",
        "-1" + "0" * 37,
        "1" + "0" * 40,
    ],
)
def test_the_integer_fast_path_agrees_with_number_size(integer: str) -> None:
    assert plain_size(f'{{"n": {integer}}}') == len("n") + number_size(integer)


# --- item sizes ---------------------------------------------------------------------

ITEM_SIZES = [
    ('{"name": "abc"}', 4 + 3),
    ('{"s": ""}', 1 + 0),
    ('{"s": "\u00e9"}', 1 + 2),
    ('{"s": "\u65e5\u672c"}', 1 + 6),
    ('{"s": "\U0001f600"}', 1 + 4),
    ('{"\u00e9": "a"}', 2 + 1),
    ('{"b": true}', 1 + 1),
    ('{"z": null}', 1 + 1),
    ('{"l": []}', 1 + 3),
    ('{"m": {}}', 1 + 3),
    ('{"l": ["a", "bc"]}', 1 + 3 + (1 + 1) + (2 + 1)),
    ('{"m": {"k": "v", "kk": 1}}', 1 + 3 + (1 + 1 + 1) + (2 + 2 + 1)),
    ('{"m": {"l": [true, null]}}', 1 + 3 + (1 + (3 + (1 + 1) + (1 + 1)) + 1)),
    ('{"ab": 12.3, "c": -1}', (2 + 3) + (1 + 3)),
    ('{"PK": "p1", "SK": "DETAILS", "price": 1299}', (2 + 2) + (2 + 7) + (5 + 3)),
]


@pytest.mark.parametrize(("text", "size"), ITEM_SIZES)
def test_item_size_follows_the_developer_guide(text: str, size: int) -> None:
    assert plain_size(text) == size


@pytest.mark.parametrize(("text", "size"), ITEM_SIZES)
def test_typed_size_agrees_with_from_plain_on_the_same_item(text: str, size: int) -> None:
    item, plain_bytes = from_plain(parse_json(text))
    assert typed_size(item) == plain_bytes == size


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"ss": {"SS": ["a", "bb"]}}, 2 + 1 + 2),
        ({"ss": {"SS": ["\u00e9"]}}, 2 + 2),
        ({"ns": {"NS": ["1", "12.3"]}}, 2 + 2 + 3),
        ({"bs": {"BS": [b64(b"ab"), b64(b"xyz")]}}, 2 + 2 + 3),
        ({"b": {"B": b64(bytes(range(10)))}}, 1 + 10),  # raw bytes, not the 16 base64 chars
        ({"b": {"B": ""}}, 1 + 0),
        ({"l": {"L": [{"SS": ["a"]}, {"B": b64(b"xyz")}]}}, 1 + 3 + (1 + 1) + (3 + 1)),
    ],
)
def test_typed_sets_and_binaries_cost_the_sum_of_their_raw_elements(item: Item, size: int) -> None:
    assert typed_size(item) == size


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"a": {"S": 1}}, "a: S must hold a string"),
        ({"a": {"N": 5}}, "a: N must hold the number as a string"),
        (parse_json('{"a": {"N": 5}}'), "a: N must hold the number as a string"),
        ({"a": {"N": "abc"}}, "'abc' is not a number"),
        ({"a": {"X": "a"}}, "a: unknown type descriptor 'X'"),
        ({"a": {"S": "x", "N": "1"}}, "a: expected one type descriptor"),
        ({"a": {}}, "a: expected one type descriptor"),
        ({"a": "bare"}, "a: expected one type descriptor"),
        ({"a": {"SS": []}}, "a: SS must be a non-empty list"),
        ({"a": {"SS": "a"}}, "a: SS must be a non-empty list"),
        ({"a": {"SS": ["a", "a"]}}, "a: SS holds duplicate values"),
        ({"a": {"NS": [1]}}, "a: N must hold the number as a string"),
        ({"a": {"B": "not base64!"}}, "a: B is not valid base64"),
        ({"a": {"NULL": False}}, "a: NULL must be true"),
        ({"a": {"BOOL": "true"}}, "a: BOOL must be true or false"),
        ({"a": {"L": {}}}, "a: L must be a list"),
        ({"a": {"M": []}}, "a: M must be an object"),
        ({"a": {"M": {"b": {"L": [{"S": "ok"}, {"S": 1}]}}}}, r"a\.b\[1\]: S must hold a string"),
    ],
)
def test_typed_size_rejects_malformed_descriptors_saying_where_and_why(
    item: Any, reason: str
) -> None:
    with pytest.raises(CodecError, match=reason):
        typed_size(item)


def test_typed_size_rejects_an_item_that_is_not_an_object() -> None:
    with pytest.raises(CodecError, match="an item must be a JSON object, got an array"):
        typed_size([{"S": "x"}])


@pytest.mark.parametrize("members", [[["a"]], [{"S": "a"}]])
def test_a_set_of_non_strings_is_a_codec_error_not_a_crash(members: list[Any]) -> None:
    with pytest.raises(CodecError, match=r"^a: "):
        typed_size({"a": {"SS": members}})


def test_a_number_set_with_equal_numbers_in_different_spellings_is_refused() -> None:
    # Measured: DynamoDB Local refuses NS ['1', '1.0'] ('Input collection contains duplicates').
    with pytest.raises(CodecError, match="a: NS holds duplicate values"):
        typed_size({"a": {"NS": ["1", "1.0"]}})


# --- stored items read back (verify --compare, get) ------------------------------


def test_items_dynamodb_holds_equal_are_the_same_item() -> None:
    # Numbers by value at any depth, sets in any order.
    sent = {
        "n": {"N": "1.0"},
        "z": {"N": "-0"},
        "ns": {"NS": ["1", "2.50"]},
        "ss": {"SS": ["a", "b"]},
        "m": {"M": {"x": {"N": "10E-1"}, "l": {"L": [{"N": "1.50"}, {"S": "s"}]}}},
    }
    stored = {
        "n": {"N": "1"},
        "z": {"N": "0"},
        "ns": {"NS": ["2.5", "1"]},
        "ss": {"SS": ["b", "a"]},
        "m": {"M": {"x": {"N": "1"}, "l": {"L": [{"N": "1.5"}, {"S": "s"}]}}},
    }
    assert same_item(sent, stored)


def in_every_place(number: str) -> list[Item]:
    """Items that hold `number` as a number, in a number set, and in a map in a list."""
    return [
        {"n": {"N": number}},
        {"n": {"NS": ["1", number]}},
        {"n": {"L": [{"M": {"n": {"N": number}}}]}},
    ]


@pytest.mark.parametrize(
    ("sent", "stored"),
    list(zip(in_every_place(THIRTY_EIGHT_DIGITS), in_every_place(ITS_NEIGHBOUR), strict=True)),
)
def test_numbers_that_differ_only_in_the_38th_digit_make_different_items(
    sent: Item, stored: Item
) -> None:
    # Decimal.normalize() in the default 28-digit context took these for one item.
    assert not same_item(sent, stored)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"a": {"S": "1"}}, {"a": {"N": "1"}}),  # another type
        ({"a": {"S": "1"}}, {"a": {"S": "1"}, "b": {"S": "2"}}),  # another attribute
        ({"l": {"L": [{"S": "1"}, {"S": "2"}]}}, {"l": {"L": [{"S": "2"}, {"S": "1"}]}}),
    ],
)
def test_an_item_with_another_type_attribute_or_list_order_is_different(
    sent: Item, stored: Item
) -> None:
    assert not same_item(sent, stored)


def test_a_stored_item_reads_back_as_plain_json_with_its_numbers_exact() -> None:
    stored = {
        "n": {"N": "12345678901234567890123456789012345678"},
        "ns": {"NS": ["0.1"]},
        "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": True}, {"S": "s"}]}}},
    }
    plain_json = orjson.dumps({name: to_plain(value) for name, value in stored.items()})
    assert plain_json == (
        b'{"n":12345678901234567890123456789012345678,"ns":[0.1],"m":{"l":[null,true,"s"]}}'
    )


# --- WCU and the 400 KB limit ---------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "units"),
    [(0, 1), (1, 1), (1024, 1), (1025, 2), (2048, 2), (2049, 3), (MAX_ITEM_BYTES, 400)],
)
def test_a_put_costs_one_wcu_per_started_kilobyte_and_at_least_one(size: int, units: int) -> None:
    assert wcu(size) == units


def test_an_item_of_exactly_400_kb_is_accepted() -> None:
    check_size(400 * 1024)


def test_an_item_one_byte_over_400_kb_is_refused() -> None:
    with pytest.raises(CodecError, match=r"item is 409601 bytes; .*400 KB"):
        check_size(400 * 1024 + 1)


# --- keys ---------------------------------------------------------------------------

SIMPLE = KeySchema("tbl", "id", "S")
NUMERIC = KeySchema("tbl", "id", "N")
COMPOSITE = KeySchema("tbl", "PK", "S", "SK", "S")


def test_key_of_returns_table_and_key_values() -> None:
    item = plain('{"PK": "p1", "SK": "DETAILS", "price": 3}')
    assert COMPOSITE.key_of(item) == ("tbl", "p1", "DETAILS")
    assert SIMPLE.key_of(plain('{"id": "a"}')) == ("tbl", "a")


@pytest.mark.parametrize(
    ("schema", "text", "reason"),
    [
        (SIMPLE, '{"other": "x"}', "key attribute 'id' is missing"),
        (COMPOSITE, '{"PK": "p"}', "key attribute 'SK' is missing"),
        (SIMPLE, '{"id": ""}', "key attribute 'id' is empty"),
        (COMPOSITE, '{"PK": "p", "SK": ""}', "key attribute 'SK' is empty"),
        (NUMERIC, '{"id": "1"}', "key attribute 'id' must be of type N, got S"),
        (SIMPLE, '{"id": 1}', "key attribute 'id' must be of type S, got N"),
        (SIMPLE, '{"id": null}', "key attribute 'id' must be of type S, got NULL"),
        (KeySchema("tbl", "id", "B"), '{"id": "x"}', "key attribute 'id' must be of type B, got S"),
    ],
)
def test_key_of_refuses_missing_empty_and_mistyped_keys(
    schema: KeySchema, text: str, reason: str
) -> None:
    with pytest.raises(CodecError, match=reason):
        schema.key_of(plain(text))


@pytest.mark.parametrize("spelling", ["1", "1.0", "10E-1", "1.00", "0.1E1", "1e0"])
def test_numeric_keys_that_dynamodb_treats_as_equal_are_one_key(spelling: str) -> None:
    assert NUMERIC.key_of({"id": {"N": spelling}}) == NUMERIC.key_of({"id": {"N": "1"}})


def test_numeric_keys_that_differ_are_different_keys() -> None:
    assert NUMERIC.key_of({"id": {"N": "1"}}) != NUMERIC.key_of({"id": {"N": "10"}})
    assert NUMERIC.key_of({"id": {"N": "0.1"}}) != NUMERIC.key_of({"id": {"N": "1"}})


def test_thirty_eight_digit_numeric_keys_differing_in_the_last_digit_are_different_keys() -> None:
    # Measured: DynamoDB Local stores these as two items.
    first = NUMERIC.key_of({"id": {"N": "12345678901234567890123456789012345678"}})
    second = NUMERIC.key_of({"id": {"N": "12345678901234567890123456789012345679"}})
    assert first != second


def test_zero_and_negative_zero_are_one_numeric_key() -> None:
    # Measured: DynamoDB Local stores -0 as 0, so a put on -0 replaces the item at 0.
    assert NUMERIC.key_of({"id": {"N": "-0"}}) == NUMERIC.key_of({"id": {"N": "0"}})


@pytest.mark.parametrize(
    ("schema", "value", "ok"),
    [
        (SIMPLE, "a" * 2048, True),
        (SIMPLE, "a" * 2049, False),
        (SIMPLE, "\u00e9" * 600, True),  # 1200 bytes: short in characters, long in bytes
        (SIMPLE, "\u00e9" * 1024, True),  # 2048 bytes
        (SIMPLE, "\u00e9" * 1025, False),  # 2050 bytes, only 1025 characters
        (SIMPLE, "\U0001f600" * 513, False),  # 2052 bytes, 513 characters
    ],
)
def test_a_partition_key_over_2048_utf8_bytes_is_refused(
    schema: KeySchema, value: str, ok: bool
) -> None:
    item = {"id": {"S": value}}
    if ok:
        assert schema.key_of(item) == ("tbl", value)
    else:
        with pytest.raises(CodecError, match="over DynamoDB's 2048-byte key limit"):
            schema.key_of(item)


def test_a_sort_key_over_1024_bytes_is_refused() -> None:
    assert COMPOSITE.key_of({"PK": {"S": "p"}, "SK": {"S": "s" * 1024}})[2] == "s" * 1024
    with pytest.raises(CodecError, match="'SK' is over DynamoDB's 1024-byte key limit"):
        COMPOSITE.key_of({"PK": {"S": "p"}, "SK": {"S": "s" * 1025}})


def test_a_binary_partition_key_is_measured_in_raw_bytes() -> None:
    # Measured: DynamoDB Local accepts a 2048-byte binary partition key, refuses 2049.
    schema = KeySchema("tbl", "id", "B")
    value = b64(b"x" * 2048)  # 2732 base64 characters
    assert schema.key_of({"id": {"B": value}}) == ("tbl", value)
    with pytest.raises(CodecError, match="over DynamoDB's 2048-byte key limit"):
        schema.key_of({"id": {"B": b64(b"x" * 2049)}})


def test_project_keeps_only_the_key_attributes() -> None:
    item = plain('{"PK": "p1", "SK": "DETAILS", "name": "Laptop", "price": 1299}')
    assert COMPOSITE.project(item) == {"PK": {"S": "p1"}, "SK": {"S": "DETAILS"}}
    assert SIMPLE.project(plain('{"id": "a", "x": 1}')) == {"id": {"S": "a"}}


# --- index write cost -------------------------------------------------------------------

GSI_ITEM = '{"PK": "p", "GSI1PK": "g", "body": "' + "x" * 1500 + '"}'  # 1514 bytes: 2 WCU


def _schema_with(*indexes: Index) -> KeySchema:
    return KeySchema("tbl", "PK", "S", indexes=indexes)


def test_an_index_projecting_all_attributes_doubles_the_write_cost() -> None:
    item, size = from_plain(parse_json(GSI_ITEM))
    assert wcu(size) == 2
    schema = _schema_with(Index("GSI1", ("GSI1PK",), None))
    assert schema.put_wcu(item, size) == 4


def test_a_keys_only_index_costs_the_size_of_its_projected_attributes() -> None:
    item, size = from_plain(parse_json(GSI_ITEM))
    schema = _schema_with(Index("GSI1", ("GSI1PK",), frozenset({"PK", "GSI1PK"})))
    assert schema.put_wcu(item, size) == 2 + 1


def test_an_item_without_the_index_key_costs_nothing_in_that_index() -> None:
    item, size = from_plain(parse_json('{"PK": "p", "body": "' + "x" * 1500 + '"}'))
    schema = _schema_with(Index("GSI1", ("GSI1PK",), None), Index("LSI", ("GSI1PK", "PK"), None))
    assert schema.put_wcu(item, size) == wcu(size) == 2


def test_an_index_with_a_composite_key_needs_both_attributes() -> None:
    item, size = from_plain(parse_json(GSI_ITEM))
    schema = _schema_with(Index("GSI2", ("GSI1PK", "GSI2SK"), None))
    assert schema.put_wcu(item, size) == 2


# --- encode -----------------------------------------------------------------------------


def _encode(
    value: Any, *, delete: bool = False, typed: bool = False, schema: KeySchema = COMPOSITE
) -> Any:
    return encode(
        seq=7,
        source="in.jsonl",
        line=3,
        value=value,
        text="raw",
        typed=typed,
        delete=delete,
        schema=schema,
    )


def test_encode_a_put_carries_the_whole_item_its_key_size_and_cost() -> None:
    value = parse_json('{"PK": "p1", "SK": "DETAILS", "price": 1299, "body": "' + "x" * 1100 + '"}')
    item, size = from_plain(value)
    write = _encode(value)
    assert write.request == {"PutRequest": {"Item": item}}
    assert write.key == ("tbl", "p1", "DETAILS")
    assert write.table == "tbl"
    assert (write.size, write.wcu, write.delete) == (size, 2, False)
    assert (write.seq, write.source, write.line, write.text) == (7, "in.jsonl", 3, "raw")


def test_encode_costs_a_plain_record_in_each_index_as_its_typed_item() -> None:
    keys_only = Index("GSI1", ("GSI1PK",), frozenset({"PK", "GSI1PK"}))
    for indexes, units in (((keys_only,), 2 + 1), ((Index("ALL", ("GSI1PK",), None),), 4)):
        schema = _schema_with(*indexes)
        item, _ = from_plain(parse_json(GSI_ITEM))
        assert _encode(parse_json(GSI_ITEM), schema=schema).wcu == units
        assert _encode(item, typed=True, schema=schema).wcu == units


def test_encode_a_typed_put_sends_the_item_as_given() -> None:
    item = {"PK": {"S": "p1"}, "SK": {"S": "S"}, "n": {"N": "1.50"}, "b": {"B": b64(b"abc")}}
    write = _encode(item, typed=True)
    assert write.request == {"PutRequest": {"Item": item}}
    assert write.size == typed_size(item)


def test_encode_a_delete_keeps_only_the_key_and_costs_one_wcu() -> None:
    value = parse_json('{"PK": "p1", "SK": "DETAILS", "body": "' + "x" * 5000 + '"}')
    write = _encode(value, delete=True)
    assert write.request == {"DeleteRequest": {"Key": {"PK": {"S": "p1"}, "SK": {"S": "DETAILS"}}}}
    assert write.delete is True
    assert write.wcu == 1
    assert write.key == ("tbl", "p1", "DETAILS")


def test_encode_uses_the_index_cost_when_the_table_has_indexes() -> None:
    schema = _schema_with(Index("GSI1", ("GSI1PK",), None))
    assert _encode(parse_json(GSI_ITEM), schema=schema).wcu == 4


def test_encode_accepts_an_item_of_exactly_400_kb_and_refuses_one_byte_more() -> None:
    overhead = len("PK") + len("p") + len("SK") + len("s") + len("body")
    at_limit = {"PK": "p", "SK": "s", "body": "x" * (MAX_ITEM_BYTES - overhead)}
    assert _encode(at_limit).size == MAX_ITEM_BYTES
    over = {"PK": "p", "SK": "s", "body": "x" * (MAX_ITEM_BYTES - overhead + 1)}
    with pytest.raises(CodecError, match="DynamoDB's limit is 409600"):
        _encode(over)


def test_encode_refuses_a_record_without_its_key() -> None:
    with pytest.raises(CodecError, match="key attribute 'SK' is missing"):
        _encode(parse_json('{"PK": "p1"}'))


def test_a_write_carries_its_request_as_the_exact_json_that_goes_on_the_wire() -> None:
    value = parse_json('{"PK": "p1", "SK": "é\\"", "n": 1.50, "big": 1234567890123456789012345}')
    item, _ = from_plain(value)
    request = _encode(value).request
    assert isinstance(request, Request)
    assert request.json == orjson.dumps({"PutRequest": {"Item": item}})
    # Numbers travel as their exact text, never through a binary float.
    assert b'"n":{"N":"1.50"}' in request.json
    assert b'"big":{"N":"1234567890123456789012345"}' in request.json


def test_an_encoded_request_reads_like_the_dict_it_encodes() -> None:
    request = Request.of({"DeleteRequest": {"Key": {"PK": {"S": "p1"}}}})
    assert request["DeleteRequest"]["Key"] == {"PK": {"S": "p1"}}
    assert request.get("PutRequest", {}) == {}
    assert list(request) == ["DeleteRequest"]
    assert len(request) == 1
    assert request == {"DeleteRequest": {"Key": {"PK": {"S": "p1"}}}}


SHAPED_RECORDS = [
    '{"PK": "p1", "SK": "s", "n": 12, "d": 1.50, "b": true, "z": null, "t": ["a", 1],'
    ' "m": {"k": 5}}',
    '{"PK": "p2", "SK": "ß€😀", "n": -120000, "d": -0.0010, "b": false, "z": null, "t": [],'
    ' "m": {"k": "x", "deep": {"l": [null, true, 1e5]}}}',
    '{"PK": "p3", "SK": "", "n": 9999, "d": 12345678901234567890.5, "b": true, "z": null,'
    ' "t": [{"a": 1}], "m": {}}',
    '{"PK": "p4", "SK": "s", "n": 10000, "d": 1E-3, "b": true, "z": null, "t": ["x"],'
    ' "m": {"k": 0}}',
    '{"n": 0, "PK": "p5"}',
    '{"PK": "p6", "n": 123456789012345678901234567890123456}',
    "{}",
]


@pytest.mark.parametrize("text", SHAPED_RECORDS)
def test_a_compiled_record_shape_sends_the_bytes_of_the_general_path(text: str) -> None:
    item, size = from_plain(parse_json(text))
    first = put_entry(parse_json(text))  # compiles this shape
    again = put_entry(parse_json(text))  # runs the compiled converter
    assert first == again == (wire(item), size)
    assert record_shape(parse_json(text)) in compiled._SHAPES


def record_shape(record: dict[str, Any]) -> tuple[tuple[str, ...], tuple[type, ...]]:
    return tuple(record), tuple(map(type, record.values()))


def test_a_shape_with_a_value_the_general_path_refuses_is_refused_with_its_reason() -> None:
    for _ in range(2):
        with pytest.raises(CodecError, match="binary floats are refused"):
            put_entry({"PK": "p", "f": 1.5})
    assert record_shape({"PK": "p", "f": 1.5}) not in compiled._SHAPES


def test_records_past_the_shape_limit_still_convert_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compiled, "_SHAPES", {})
    monkeypatch.setattr(compiled, "_BY_NAMES", {})
    monkeypatch.setattr(compiled, "MAX_SHAPES", 2)
    records = [{"PK": "p", f"a{i}": i, "s": "é"} for i in range(5)]
    for record in records:
        item, size = from_plain(record)
        assert put_entry(record) == (wire(item), size)
    assert len(compiled._SHAPES) == 2


# As they stand inside a JSON string: each needs an escape on the wire too.
ESCAPED_STRINGS = [r"a\"b", r"back\\slash", r"new\nline", r"tab\t", r"\u0001", r"é\"", r"😀\\"]


@pytest.mark.parametrize("escaped", ESCAPED_STRINGS)
def test_strings_that_json_escapes_are_escaped_wherever_they_are(escaped: str) -> None:
    # Top level, in a list of strings, in a nested map, as a name: each escaped as
    # orjson escapes it, whichever of the record's strings needs it.
    texts = [
        f'{{"PK": "{escaped}", "SK": "s", "other": "plain"}}',
        f'{{"PK": "p", "SK": "s", "other": "{escaped}"}}',
        f'{{"PK": "p", "tags": ["x", "{escaped}"], "m": {{"k": "{escaped}", "n": 1}}}}',
        f'{{"PK": "p", "{escaped}": "v", "m": {{"{escaped}": ["{escaped}"]}}}}',
    ]
    for text in texts * 2:  # the second time through compiled converters
        item, size = from_plain(parse_json(text))
        assert put_entry(parse_json(text)) == (wire(item), size)
        assert orjson.loads(put_entry(parse_json(text))[0])["PutRequest"]["Item"] == item


def test_a_string_with_a_lone_surrogate_is_refused_not_sent() -> None:
    # JSON input cannot hold one (the parser refuses it); Python callers of load() can.
    for record in ({"PK": "p", "s": "a\ud800"}, {"PK": "p", "t": ["\udfff"]}, {"\ud800": 1}):
        with pytest.raises(CodecError, match=r"^a string holds a lone surrogate \(not Unicode"):
            put_entry(record)


def test_a_record_with_two_faults_is_refused_for_the_first_as_the_general_path_does() -> None:
    record = {"PK": "p", "t": ["\ud800", 1], "n": Num("abc")}
    with pytest.raises(CodecError, match="'abc' is not a number"):
        from_plain(record)
    with pytest.raises(CodecError, match="'abc' is not a number"):
        put_entry(record)


@pytest.mark.parametrize("depth", [1, 33, 126, 127, 400, 5000])
def test_deeply_nested_records_are_sent_as_the_general_path_sends_them_or_refused(
    depth: int,
) -> None:
    # Compiled code goes one map deep; the general path meets the rest, bounded by
    # orjson (254 levels) and the parser: a reason each time, never a crash.
    text = '{"PK": "p", "m": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    if depth > 1000:  # past the parser's own limit
        with pytest.raises(CodecError, match="nested too deep"):
            parse_json(text)
        return
    record = parse_json(text)
    item, size = from_plain(record)
    try:
        expected = wire(item)
    except orjson.JSONEncodeError:
        with pytest.raises(CodecError, match=r"^values nested too deep"):
            put_entry(record)
        return
    assert put_entry(record) == (expected, size)


def test_a_python_record_nested_past_the_recursion_limit_is_refused() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(3000):
        deep = {"a": deep}
    with pytest.raises(CodecError, match="nested too deep"):
        put_entry({"PK": "p", "m": deep})
    typed: dict[str, Any] = {"S": "x"}
    for _ in range(3000):
        typed = {"M": {"a": typed}}
    with pytest.raises(CodecError, match="nested too deep"):
        encode(
            seq=1,
            source="api",
            line=1,
            value={"PK": {"S": "p"}, "m": typed},
            text="",
            typed=True,
            delete=False,
            schema=_schema_with(),
        )


def test_digits_of_other_scripts_are_not_numbers() -> None:
    for text in ("١٢", "²", "1.٣"):
        with pytest.raises(CodecError, match="is not a number"):
            put_entry({"PK": "p", "n": Num(text)})


def test_small_integers_cost_what_the_digit_rule_says() -> None:
    for n in (0, 1, 9, 10, 99, 100, 1000, 1200, 9999, 10_000, -5, 123_456_789):
        assert from_plain({"n": n})[1] == 1 + number_size(str(n))


def test_records_of_the_same_names_but_other_value_types_convert_exactly() -> None:
    texts = [
        '{"PK": "p", "v": 1, "m": {"a": 1, "b": "x"}}',
        '{"PK": "p", "v": "one", "m": {"a": "1", "b": 2.50}}',
        '{"PK": "p", "v": 1.5, "m": {"a": null, "b": [1, {"c": true}]}}',
        '{"PK": "p", "v": {"w": 1}, "m": {"a": {}, "b": {"a": 1, "b": "x"}}}',
    ]
    for text in texts * 2:  # the second time through compiled converters
        item, size = from_plain(parse_json(text))
        assert put_entry(parse_json(text)) == (wire(item), size)


NAMES = st.text(max_size=6)
LEAVES = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: Num(str(d))),
    st.booleans(),
    st.none(),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(NAMES, VALUES, max_size=8))
def test_any_record_goes_on_the_wire_as_the_general_path_makes_it(record: dict[str, Any]) -> None:
    for cache in (
        compiled._SHAPES,
        compiled._BY_NAMES,
        compiled._NESTED,
        compiled._NESTED_BY_NAMES,
    ):
        cache.clear()  # every example compiles its own shapes, never past MAX_SHAPES
    try:
        item, size = from_plain(record)
    except CodecError as refused:
        with pytest.raises(CodecError, match=re.escape(str(refused))):
            put_entry(record)
        return
    assert put_entry(record) == (wire(item), size)  # compiles
    assert put_entry(record) == (wire(item), size)  # runs what was compiled


# Keys at DynamoDB's limits: 2048 bytes for a partition key, 1024 for a sort key.
EDGE_KEYS = ["😀" * 256, "😀" * 257, "😀" * 512, "😀" * 513, "a" * 1025, "a" * 2049, ""]
KEY_VALUES = st.one_of(
    st.text(alphabet=st.sampled_from("a😀é"), max_size=600),
    st.sampled_from(EDGE_KEYS),
    st.integers(),
    st.sampled_from([Num("1.50"), Num("-0"), True, None, [], {}]),
)


def key_of_plain_agrees(record: dict[str, Any], schema: KeySchema) -> None:
    try:
        item = from_plain(record)[0]
    except CodecError:
        return  # encode() refuses such a record for its values before it looks at the key
    try:
        expected = schema.key_of(item)
    except CodecError as refused:
        with pytest.raises(CodecError, match=re.escape(str(refused))):
            schema.key_of_plain(record)
        return
    assert schema.key_of_plain(record) == expected


@pytest.mark.parametrize("sk", EDGE_KEYS)
@pytest.mark.parametrize("pk", EDGE_KEYS)
def test_the_key_of_a_plain_record_keeps_the_limits_of_its_item(pk: str, sk: str) -> None:
    key_of_plain_agrees({"PK": pk, "SK": sk}, KeySchema("t", "PK", "S", "SK", "S"))


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries({}, optional={"PK": KEY_VALUES, "SK": KEY_VALUES}),
    st.sampled_from(["S", "N", "B"]),
    st.sampled_from(["S", "N", None]),
)
def test_the_key_of_a_plain_record_is_the_key_of_its_item(
    record: dict[str, Any], hash_type: str, range_type: str | None
) -> None:
    key_of_plain_agrees(record, KeySchema("t", "PK", hash_type, range_type and "SK", range_type))


DECIMAL_TEXTS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(lambda d: f"{d:f}"),
    st.from_regex(r"-?[0-9]{1,45}(\.[0-9]{1,45})?", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(DECIMAL_TEXTS, st.randoms(use_true_random=False))
def test_a_number_is_sized_as_measured_whatever_was_sized_before(text: str, rng: Any) -> None:
    # A text of the same shape (other non-zero digits) sized first: the text itself
    # must still get its own size, or its own refusal.
    twin = "".join(rng.choice("123456789") if c in "123456789" else c for c in text)
    numbers._DECIMAL_SIZES.clear()
    with contextlib.suppress(CodecError):
        numbers._decimal_size(twin)
    try:
        expected = number_size(text)
    except CodecError as refused:
        with pytest.raises(CodecError, match=re.escape(str(refused))):
            numbers._decimal_size(text)
        return
    assert numbers._decimal_size(text) == expected


def test_an_attribute_name_that_is_not_a_string_is_refused_with_a_reason() -> None:
    with pytest.raises(CodecError, match="attribute names must be strings, not int 7"):
        from_plain({"PK": "a", 7: "x"})
