"""ddb_loader from Python: records a program holds go in with every guarantee of the
command line, read back from DynamoDB Local."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

import ddb_loader
from ddb_loader import ConfigError, Reject
from tests.conftest import TableFactory, scan_table, stored
from tests.ddb_local import DynamoDBLocal

pytestmark = pytest.mark.integration

_round_trip = TypeDeserializer().deserialize
_serialize = TypeSerializer().serialize


def as_stored(record: dict[str, Any]) -> dict[str, Any]:
    """What boto3 reads back for `record`, put as boto3 itself would put it."""
    return {name: _round_trip(_serialize(value)) for name, value in record.items()}


def product(i: int, **extra: Any) -> dict[str, Any]:
    return {"PK": f"p#{i}", "SK": "v1", "price": Decimal(f"{i}.10"), **extra}


def test_python_values_are_stored_exactly(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    records = [
        product(
            1,
            digits=Decimal("1234567890123456789012345.678901234567"),  # 38 digits
            big=10**37,
            blob=b"\x00\xff raw",
            tags={"red", "blue"},
            sizes={1, Decimal("2.5")},
            blobs={b"a", b"b"},
            nested={"dims": [Decimal("0.5"), 2, "cm"], "ok": True, "none": None},
        ),
        product(2, name="Ünïcode ✓"),
    ]
    table = make_table(gsi=False)

    report = ddb_loader.load(records, table=table, endpoint_url=ddb_local.url)

    assert report.items_written == 2
    assert report.rejected == 0
    assert stored(ddb_local.url, table) == {(r["PK"], r["SK"]): as_stored(r) for r in records}


def test_a_generator_is_streamed_and_the_last_write_of_a_key_wins(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    def catalog() -> Iterator[dict[str, Any]]:
        for version in (1, 2, 3):
            for i in range(1_000):
                yield product(i, version=version)

    table = make_table(gsi=False)
    report = ddb_loader.load(catalog(), table=table, endpoint_url=ddb_local.url, workers=8)

    assert report.records_read == 3_000
    assert stored(ddb_local.url, table) == {
        (f"p#{i}", "v1"): as_stored(product(i, version=3)) for i in range(1_000)
    }


async def test_load_async_takes_an_async_iterable_inside_an_event_loop(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    async def catalog() -> AsyncIterator[dict[str, Any]]:
        for i in range(600):
            if i % 100 == 0:
                await asyncio.sleep(0)  # a producer that awaits its own I/O
            yield product(i)

    table = make_table(gsi=False)
    report = await ddb_loader.load_async(catalog(), table=table, endpoint_url=ddb_local.url)

    assert report.items_written == 600
    assert stored(ddb_local.url, table) == {
        (f"p#{i}", "v1"): as_stored(product(i)) for i in range(600)
    }


def test_each_refused_record_comes_back_to_the_caller_with_its_place_and_reason(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    bad = {
        2: product(2, weight=1.5),  # a binary float: not exact
        4: {"PK": "p#4", "price": Decimal(1)},  # no sort key
        6: product(6, tags=set()),  # DynamoDB has no empty set
        8: product(8, text="x" * 410_000),  # over 400 KB
    }
    records = [bad.get(n) or product(n) for n in range(1, 11)]
    rejects: list[Reject] = []
    table = make_table(gsi=False)

    report = ddb_loader.load(
        records,
        table=table,
        endpoint_url=ddb_local.url,
        on_reject=rejects.append,
        rejects=str(tmp_path / "rejects.jsonl"),
    )

    assert [(r.source, r.line) for r in rejects] == [("<records>", n) for n in sorted(bad)]
    reasons = {r.line: r.reason for r in rejects}
    assert "float" in reasons[2]
    assert "SK" in reasons[4]
    assert "empty set" in reasons[6]
    assert "400" in reasons[8]
    assert report.rejected == 4
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 4
    assert stored(ddb_local.url, table) == {
        (f"p#{n}", "v1"): as_stored(product(n)) for n in range(1, 11) if n not in bad
    }


def test_paths_load_as_the_command_line_loads_them(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    (tmp_path / "a.jsonl").write_text('{"PK": "a", "SK": "1", "n": 1}\n')
    (tmp_path / "b.jsonl").write_text('{"PK": "b", "SK": "1", "n": 2}\n')
    table = make_table(gsi=False)

    ddb_loader.load([tmp_path / "a.jsonl", str(tmp_path / "b.jsonl")], table=table,
                    endpoint_url=ddb_local.url)  # fmt: skip

    assert stored(ddb_local.url, table) == {
        ("a", "1"): {"PK": "a", "SK": "1", "n": Decimal(1)},
        ("b", "1"): {"PK": "b", "SK": "1", "n": Decimal(2)},
    }


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        ({"max_wcuu": 5}, "Unknown option 'max_wcuu'"),
        ({"processes": 2}, "one process"),
        ({"checkpoint": "c.json"}, "cannot be resumed"),
        ({"table": None}, "need a table"),
    ],
)
def test_a_bad_call_is_one_sentence_before_any_write(
    ddb_local: DynamoDBLocal, make_table: TableFactory, options: dict[str, Any], sentence: str
) -> None:
    table = make_table(gsi=False)
    options = {"table": table, **options}
    with pytest.raises(ConfigError, match=sentence):
        ddb_loader.load([product(1)], endpoint_url=ddb_local.url, **options)
    assert scan_table(ddb_local.url, table) == []


async def test_the_blocking_load_says_to_await_load_async_inside_an_event_loop() -> None:
    with pytest.raises(RuntimeError, match="load_async"):
        ddb_loader.load([product(1)], table="t")


def test_a_library_load_leaves_the_process_s_collector_alone(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    before = gc.get_threshold(), gc.get_freeze_count()
    ddb_loader.load([product(1)], table=make_table(gsi=False), endpoint_url=ddb_local.url)
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
