"""Arrow rows as records: every number exact, nothing made up for a null."""

from __future__ import annotations

import datetime
import math
from decimal import Decimal

import pyarrow as pa

from loader.sources.arrow import rows


def one(table: pa.Table) -> dict[str, object]:
    (row,) = rows(table.to_batches())
    return row


def test_decimals_keep_every_digit_and_floats_are_the_number_they_print_as() -> None:
    digits = Decimal("1234567890123456789012345.6789012345678")
    row = one(
        pa.table(
            {
                "d128": pa.array([digits], pa.decimal128(38, 13)),
                "d256": pa.array([Decimal("1" * 60)], pa.decimal256(60, 0)),
                "f": pa.array([9.99], pa.float64()),
                "f32": pa.array([0.5], pa.float32()),
                "i": pa.array([2**63 - 1], pa.int64()),
            }
        )
    )
    assert row == {
        "d128": digits,
        "d256": Decimal("1" * 60),
        "f": Decimal("9.99"),
        "f32": Decimal("0.5"),
        "i": 2**63 - 1,
    }


def test_a_null_column_is_left_out_and_a_null_in_a_list_stays() -> None:
    table = pa.table({"PK": ["a", "b"], "maybe": [None, "x"], "l": [[1, None], None]})
    assert list(rows(table.to_batches())) == [
        {"PK": "a", "l": [1, None]},
        {"PK": "b", "maybe": "x"},
    ]


def test_nested_types_binary_and_times() -> None:
    at = datetime.datetime(2026, 12, 4, 19, 30, 5, 120000, tzinfo=datetime.UTC)
    row = one(
        pa.table(
            {
                "s": pa.array([{"price": 1.25, "tags": ["x"], "none": None}]),
                "m": pa.array([[("a", 1.5), ("b", None)]], pa.map_(pa.string(), pa.float64())),
                "b": pa.array([b"\x00\xff"], pa.binary()),
                "t": pa.array([at], pa.timestamp("us", tz="UTC")),
                "day": pa.array([datetime.date(2026, 12, 4)], pa.date32()),
                "ok": [True],
            }
        )
    )
    assert row == {
        "s": {"price": Decimal("1.25"), "tags": ["x"]},
        "m": {"a": Decimal("1.5")},
        "b": b"\x00\xff",
        "t": "2026-12-04T19:30:05.120000+00:00",
        "day": "2026-12-04",
        "ok": True,
    }


def test_nan_stays_a_float_for_the_codec_to_reject() -> None:
    row = one(pa.table({"f": [math.nan]}))
    assert isinstance(row["f"], float)
