"""Parquet files made by pyarrow, loaded by the command and read back from DynamoDB
Local: every Arrow type's mapping, row numbers in rejects, resume by rows, and a column
DynamoDB has no type for refused before any write."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ddb_loader
from loader.sources import parquet
from tests.conftest import TableFactory, assert_table_equals, load_into, stored
from tests.ddb_local import DynamoDBLocal

pytestmark = pytest.mark.integration

AT = datetime.datetime(2026, 12, 4, 19, 30, 5, 120000, tzinfo=datetime.UTC)


def catalog(rows: int) -> pa.Table:
    """Every Arrow type a catalog's Parquet holds, a row group every 700 rows."""
    ids = range(rows)
    return pa.table(
        {
            "PK": [f"p#{i}" for i in ids],
            "SK": ["v1"] * rows,
            "price": pa.array([Decimal(f"{i}.99") for i in ids], pa.decimal128(12, 2)),
            "exact": pa.array([Decimal("1" * 30 + "." + "2" * 8)] * rows, pa.decimal256(40, 8)),
            "count": pa.array(list(ids), pa.int64()),
            "ratio": pa.array([i / 8 for i in ids], pa.float64()),
            "name": [None if i % 5 == 0 else f"name {i}" for i in ids],
            "raw": pa.array([f"b{i}".encode() for i in ids], pa.binary()),
            "tags": [["a", "b"] if i % 2 else [] for i in ids],
            "dims": [{"w": i, "unit": "cm"} for i in ids],
            "prices": pa.array([[("eu", 1.5)]] * rows, pa.map_(pa.string(), pa.float64())),
            "updated": pa.array([AT] * rows, pa.timestamp("us", tz="UTC")),
            "day": pa.array([datetime.date(2026, 12, 4)] * rows, pa.date32()),
            "active": [i % 3 == 0 for i in ids],
        }
    )


def expected(rows: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for i in range(rows):
        item: dict[str, Any] = {
            "PK": f"p#{i}",
            "SK": "v1",
            "price": Decimal(f"{i}.99"),
            "exact": Decimal("1" * 30 + "." + "2" * 8),
            "count": Decimal(i),
            "ratio": Decimal(repr(i / 8)),
            "raw": f"b{i}".encode(),
            "tags": ["a", "b"] if i % 2 else [],
            "dims": {"w": Decimal(i), "unit": "cm"},
            "prices": {"eu": Decimal("1.5")},
            "updated": "2026-12-04T19:30:05.120000+00:00",
            "day": "2026-12-04",
            "active": i % 3 == 0,
        }
        if i % 5:
            item["name"] = f"name {i}"
        out[(item["PK"], "v1")] = item
    return out


def read_back(url: str, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        k: {n: bytes(v) if n == "raw" else v for n, v in item.items()}
        for k, item in stored(url, table).items()
    }


def test_every_arrow_type_lands_as_its_dynamodb_type(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.parquet"
    pq.write_table(catalog(2000), path, row_group_size=700)
    table = make_table()
    result = load_into(table, ddb_local.url, str(path), "--report", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    assert_table_equals(read_back(ddb_local.url, table), expected(2000))


def test_a_row_dynamodb_refuses_is_rejected_by_its_row_number(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    rows = pa.table({"PK": ["a", "b", "c"], "SK": ["v1", "", "v1"], "n": [1, 2, 3]})
    path = tmp_path / "bad.parquet"
    pq.write_table(rows, path)
    table = make_table()
    rejects = tmp_path / "rejects.jsonl"
    result = load_into(table, ddb_local.url, str(path), "--rejects", str(rejects))
    assert result.returncode == 1, result.stderr
    (line,) = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert (line["source"], line["line"]) == (str(path), 2)
    assert json.loads(line["record"]) == {"PK": "b", "SK": "", "n": 2}
    assert set(stored(ddb_local.url, table)) == {("a", "v1"), ("c", "v1")}


def test_a_column_dynamodb_has_no_type_for_stops_the_job_before_any_write(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Parquet itself stores hardly a type DynamoDB cannot hold, so the second of two
    # files has a column the loader is told to refuse, as it refuses an interval.
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"PK": ["a"], "SK": ["v1"]}), first)
    pq.write_table(pa.table({"PK": ["b"], "SK": ["v1"], "span": [1.5]}), second)
    real = parquet._unsupported
    monkeypatch.setattr(
        parquet, "_unsupported", lambda t: "of type double" if t == pa.float64() else real(t)
    )
    table = make_table()
    with pytest.raises(ddb_loader.ConfigError, match=f"Column 'span' of {second} is of type"):
        ddb_loader.load([str(first), str(second)], table=table, endpoint_url=ddb_local.url)
    assert stored(ddb_local.url, table) == {}  # not even the first file's row


def test_the_types_dynamodb_has_none_for_are_named() -> None:
    assert parquet._unsupported(pa.month_day_nano_interval()) == "of type month_day_nano_interval"
    union = pa.dense_union([pa.field("a", pa.int32())])
    assert parquet._unsupported(pa.list_(pa.struct([("u", union)]))) is not None
    assert parquet._unsupported(pa.map_(pa.string(), pa.list_(pa.decimal128(38, 2)))) is None
    assert parquet._unsupported(pa.uuid()) is None


def test_a_uuid_column_is_its_text(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    path = tmp_path / "ids.parquet"
    column = pa.array([u.bytes for u in ids], pa.uuid())
    pq.write_table(
        pa.table({"PK": [str(i) for i in range(3)], "SK": ["v1"] * 3, "id": column}), path
    )
    table = make_table()
    load_into(table, ddb_local.url, str(path), check_status=0)
    assert {item["id"] for item in stored(ddb_local.url, table).values()} == {str(u) for u in ids}
