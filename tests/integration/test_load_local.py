"""The load pipeline end to end on DynamoDB Local: what is in the table afterwards is
exactly the input, item by item, read back with boto3 rather than the loader."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from benchmarks.catalog import CSV_TYPES, products, write_csv, write_jsonl
from tests.conftest import TableFactory, load_into, run_cli, scan_table
from tests.ddb_local import DynamoDBLocal

pytestmark = pytest.mark.integration

_deserialize = TypeDeserializer().deserialize

BAD_JSONL = {
    # line number in the file → (the line, words the reason must contain)
    3: ('{"PK": "PRODUCT#broken", "SK": "DETAILS", ', "malformed JSON"),
    7: ('["PK", "not an object"]', "must be a JSON object"),
    11: ('{"SK": "DETAILS", "name": "no partition key"}', "'PK' is missing"),
    13: ('{"PK": "", "SK": "DETAILS"}', "'PK' is empty"),
    17: ('{"PK": 42, "SK": "DETAILS"}', "must be of type S"),
    19: ('{"PK": "PRODUCT#nan", "SK": "DETAILS", "price": NaN}', "NaN"),
    23: (
        '{"PK": "PRODUCT#huge", "SK": "DETAILS", "n": 1234567890123456789012345678901234567890}',
        "38",
    ),
    29: ('{"PK": "PRODUCT#big", "SK": "DETAILS", "blob": "' + "x" * 410_000 + '"}', "400 KB"),
}


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values (numbers as Decimal), independent of our codec."""
    return {name: _deserialize(value) for name, value in item.items()}


def by_key(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(item["PK"], item["SK"]): item for item in items}


def test_jsonl_load_writes_every_good_record_exactly_and_rejects_each_bad_one(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table()
    good = list(products(20_000))
    lines = [json.dumps(item) for item in good]
    for number in sorted(BAD_JSONL):
        lines.insert(number - 1, BAD_JSONL[number][0])
    source = tmp_path / "catalog.jsonl"
    source.write_text("\n".join(lines) + "\n")
    rejects, report = tmp_path / "rejects.jsonl", tmp_path / "report.json"

    result = load_into(
        table,
        ddb_local.url,
        str(source),
        "--rejects",
        str(rejects),
        "--report",
        str(report),
        "--no-progress",
    )

    assert result.returncode == 1, result.stderr  # finished, with rejects
    stored = by_key([plain(item) for item in scan_table(ddb_local.url, table)])
    expected = by_key(
        [json.loads(json.dumps(i), parse_float=Decimal, parse_int=Decimal) for i in good]
    )
    assert stored.keys() == expected.keys()
    for key, item in expected.items():
        assert stored[key] == item, key

    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in rows] == sorted(BAD_JSONL)
    for row in rows:
        text, words = BAD_JSONL[row["line"]]
        assert words in row["reason"], row["reason"]
        assert row["record"] == text
        assert row["source"] == str(source)

    numbers = json.loads(report.read_text())
    assert set(numbers) == {
        "records_read",
        "items_written",
        "deletes_written",
        "rejected",
        "skipped_on_resume",
        "requests",
        "unprocessed_retries",
        "throttled_requests",
        "throttling_reasons",
        "errors_retried",
        "consumed_wcu",
        "estimated_wcu",
        "elapsed_s",
        "items_per_second",
        "latency_ms",
    }
    assert numbers["records_read"] == len(lines)
    assert numbers["items_written"] == len(good)
    assert numbers["rejected"] == len(BAD_JSONL)
    assert numbers["items_written"] + numbers["rejected"] == numbers["records_read"]
    # Every catalog item lands in the table and in GSI1: DynamoDB Local charges both.
    assert numbers["consumed_wcu"] == numbers["estimated_wcu"] >= 2 * len(good)


def test_csv_load_types_columns_and_matches_the_file_row_by_row(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table()
    source = tmp_path / "catalog.csv"
    write_csv(str(source), products(20_000, seed=7))
    flags = [f"--csv-type={column}={kind}" for column, kind in CSV_TYPES.items()]
    report = tmp_path / "report.json"

    load_into(
        table,
        ddb_local.url,
        str(source),
        "--report",
        str(report),
        "--no-progress",
        *flags,
        check_status=0,
    )

    with source.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = {}
    for row in rows:
        item: dict[str, Any] = {k: v for k, v in row.items() if v != ""}
        for column in ("price", "stock", "rating"):
            item[column] = Decimal(item[column])
        item["active"] = item["active"] == "true"
        expected[(item["PK"], item["SK"])] = item
    stored = by_key([plain(item) for item in scan_table(ddb_local.url, table)])
    assert stored == expected
    numbers = json.loads(report.read_text())
    assert numbers["consumed_wcu"] == numbers["estimated_wcu"]


def test_a_clean_load_exits_0_and_a_missing_table_exits_2_before_reading(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    source = tmp_path / "few.jsonl"
    write_jsonl(str(source), products(30))
    ok = run_cli(
        "load", str(source), "--table", table, "--endpoint-url", ddb_local.url, "--no-progress"
    )
    assert ok.returncode == 0, ok.stderr
    assert "items written    30" in ok.stdout

    missing = run_cli(
        "load",
        str(source),
        "--table",
        "no-such-table",
        "--endpoint-url",
        ddb_local.url,
        "--no-progress",
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0  # one sentence, no traceback
    assert "'no-such-table' does not exist" in missing.stderr


def test_an_endpoint_that_refuses_connections_is_a_configuration_error(tmp_path: Path) -> None:
    source = tmp_path / "few.jsonl"
    write_jsonl(str(source), products(3))
    result = run_cli(
        "load",
        str(source),
        "--table",
        "products",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--no-progress",
    )
    assert result.returncode == 2
    assert "Cannot reach DynamoDB at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
