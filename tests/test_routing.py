"""--processes routes each record to a writer process by its table and partition key,
so every operation on a key goes through one process, in input order, and the last
write wins. DynamoDB holds numbers that are equal in value for one key (1 and 1.0, 0
and -0), so they must go to one writer however the record spells them: plain JSON,
DynamoDB JSON, or a raw line that only its key is read from (`KeyPeek`).
"""

from __future__ import annotations

import pytest

from loader.codec import KeySchema, parse_json
from loader.parallel import KeyPeek, route
from loader.sources import Record

SCHEMAS = {"t": KeySchema("t", "PK", "N")}
WRITER_COUNTS = range(2, 17)

# Two numbers DynamoDB keeps apart: they differ only in their 38th significant digit.
THIRTY_EIGHT_DIGITS = "1234567890123456789012345.6789012345678"
ITS_NEIGHBOUR = "1234567890123456789012345.6789012345679"


def writers_of(number: str, n: int) -> set[int]:
    """The writer (of `n`) a record keyed `number` goes to: once for each way of reading
    it, so one writer when they all agree."""
    raw = f'{{"PK": {number}, "other": 1}}'.encode()
    plain = Record("f", 1, parse_json(raw), raw)
    typed = Record("f", 1, {"PK": {"N": number}}, raw, typed=True)
    return {
        route(plain, "t", SCHEMAS, n),
        route(typed, "t", SCHEMAS, n),
        KeyPeek("t", "PK", n).shard(raw),
    }


@pytest.mark.parametrize(
    "spellings",
    [
        ["1", "1.0", "10E-1", "0.1e1", "1.000"],
        ["0", "-0", "0.0", "-0.0e3"],
        [
            THIRTY_EIGHT_DIGITS,
            THIRTY_EIGHT_DIGITS + "0",
            "12345678901234567890123456789012345678E-13",
        ],
    ],
)
def test_one_number_goes_to_one_writer_however_it_is_spelt(spellings: list[str]) -> None:
    for n in WRITER_COUNTS:
        writers = {writer for spelling in spellings for writer in writers_of(spelling, n)}
        assert len(writers) == 1, f"of {n} writers, {spellings} went to {writers}"


def test_numbers_that_differ_only_in_the_38th_digit_are_routed_as_two_keys() -> None:
    # Two keys may share a writer by chance of the hash, but not at every writer count:
    # Decimal.normalize() in its default 28-digit context made these one key, and sent
    # them to one writer always.
    assert any(
        writers_of(THIRTY_EIGHT_DIGITS, n) != writers_of(ITS_NEIGHBOUR, n) for n in WRITER_COUNTS
    )
