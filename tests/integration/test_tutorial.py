"""Everything the batch-operations tutorial does, with ddb-loader, on DynamoDB Local:
its request files as they are, deletes, batch get, verify, dry run, key templates."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TableFactory, load_into, run_cli, scan_table, sync_client
from tests.ddb_local import DynamoDBLocal

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TUTORIAL_TABLE = "demo-ecommerce-freetier"


def keys_of(items: list[dict[str, Any]]) -> set[str]:
    return {item["PK"]["S"] for item in items}


def tutorial_request(tmp_path: Path, name: str, table: str) -> Path:
    """A tutorial request file, pointed at this test's table (contents untouched)."""
    text = (FIXTURES / name).read_text().replace(TUTORIAL_TABLE, table)
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_tutorials_request_files_load_as_they_are_split_into_25s_with_deletes(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table()
    endpoint = ("--endpoint-url", ddb_local.url, "--no-progress")
    products = tutorial_request(tmp_path, "batch-products.json", table)
    large = tutorial_request(tmp_path, "large-batch.json", table)
    mixed = tutorial_request(tmp_path, "mixed-batch.json", table)

    first = run_cli("load", str(products), str(large), *endpoint, check_status=0)
    assert "items written    33" in first.stdout  # 3 products + 30 (the CLI refuses > 25)
    stored = scan_table(ddb_local.url, table)
    assert "PRODUCT#batch-mouse-002" in keys_of(stored)
    assert {f"PRODUCT#batch-test-{i}" for i in range(1, 31)} <= keys_of(stored)
    original = json.loads((FIXTURES / "batch-products.json").read_text())[TUTORIAL_TABLE]
    laptop = next(i for i in stored if i["PK"]["S"] == "PRODUCT#batch-laptop-001")
    assert laptop == original[0]["PutRequest"]["Item"]

    second = run_cli("load", str(mixed), *endpoint, check_status=0)
    assert "items written    1" in second.stdout
    assert "deletes written  1" in second.stdout
    after = keys_of(scan_table(ddb_local.url, table))
    assert "PRODUCT#batch-mouse-002" not in after
    assert "PRODUCT#batch-headset-004" in after


def test_a_put_then_a_delete_of_one_key_obey_input_order(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    lines = []
    for i in range(200):
        key = {"PK": {"S": f"K#{i % 20}"}, "SK": {"S": "S"}}
        if i % 3 == 2:
            lines.append({"DeleteRequest": {"Key": key}})
        else:
            lines.append({"PutRequest": {"Item": {**key, "v": {"N": str(i)}}}})
    source = tmp_path / "ops.json"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run_cli(
        "load",
        str(source),
        "--format",
        "ddb-json",
        "--table",
        table,
        "--endpoint-url",
        ddb_local.url,
        "--workers",
        "16",
        "--no-progress",
        check_status=0,
    )
    last: dict[str, int | None] = {}
    for i in range(200):
        last[f"K#{i % 20}"] = None if i % 3 == 2 else i
    expected = {k: v for k, v in last.items() if v is not None}
    stored = {i["PK"]["S"]: int(i["v"]["N"]) for i in scan_table(ddb_local.url, table)}
    assert stored == expected


def test_ddb_json_export_folder_with_every_type_round_trips(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    item = {
        "PK": {"S": "ALL#1"},
        "SK": {"S": "TYPES"},
        "s": {"S": "héllo"},
        "n": {"N": "12345678901234567890123456789012345678"},
        "b": {"B": "AAEC/w=="},
        "t": {"BOOL": True},
        "z": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": ["AQ==", "Ag=="]},
        "l": {"L": [{"S": "x"}, {"N": "1"}]},
        "m": {"M": {"k": {"S": "v"}}},
    }
    export = tmp_path / "export" / "data"
    export.mkdir(parents=True)
    with gzip.open(export / "part-0001.json.gz", "wt") as handle:
        handle.write(json.dumps({"Item": item}) + "\n")
        handle.write(json.dumps({"Item": {"PK": {"S": "ALL#2"}, "SK": {"Q": "bad"}}}) + "\n")
    (export.parent / "manifest-summary.json").write_text("{}")
    rejects = tmp_path / "rejects.jsonl"
    result = load_into(
        table,
        ddb_local.url,
        str(export.parent),
        "--rejects",
        str(rejects),
        "--no-progress",
    )
    assert result.returncode == 1, result.stderr
    (stored,) = scan_table(ddb_local.url, table)
    sets = ("ss", "ns", "bs", "b")
    assert {k: v for k, v in stored.items() if k not in sets} == {
        k: v for k, v in item.items() if k not in sets
    }
    # boto3 hands binary back decoded: the bytes are the base64 text's, not the text.
    assert stored["b"]["B"] == base64.b64decode("AAEC/w==")
    assert sorted(stored["ss"]["SS"]) == ["a", "b"]
    assert sorted(stored["ns"]["NS"]) == ["1", "2.5"]
    assert sorted(stored["bs"]["BS"]) == [b"\x01", b"\x02"]
    (reject,) = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert reject["line"] == 2
    assert "unknown type descriptor 'Q'" in reject["reason"]


def test_bulk_delete_removes_every_key_of_a_source(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    source = tmp_path / "catalog.jsonl"
    source.write_text(
        "".join(json.dumps({"PK": f"P#{i}", "SK": "D", "x": i}) + "\n" for i in range(300))
    )
    endpoint = ("--table", table, "--endpoint-url", ddb_local.url, "--no-progress")
    run_cli("load", str(source), *endpoint, check_status=0)
    keep = tmp_path / "keep.jsonl"
    keep.write_text(json.dumps({"PK": "P#keep", "SK": "D"}) + "\n")
    run_cli("load", str(keep), *endpoint, check_status=0)
    report = tmp_path / "report.json"
    run_cli("delete", str(source), *endpoint, "--report", str(report), check_status=0)
    assert keys_of(scan_table(ddb_local.url, table)) == {"P#keep"}
    assert json.loads(report.read_text())["deletes_written"] == 300


def test_get_reads_the_tutorials_batch_get_files_with_projection_and_exact_numbers(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table()
    products = tutorial_request(tmp_path, "batch-products.json", table)
    run_cli("load", str(products), "--endpoint-url", ddb_local.url, "--no-progress", check_status=0)

    plain = run_cli(
        "get",
        str(tutorial_request(tmp_path, "batch-get.json", table)),
        "--endpoint-url",
        ddb_local.url,
        check_status=0,
    )
    items = [json.loads(line) for line in plain.stdout.splitlines()]
    assert {i["PK"] for i in items} == {
        "PRODUCT#batch-laptop-001",
        "PRODUCT#batch-mouse-002",
        "PRODUCT#batch-keyboard-003",
    }
    assert next(i for i in items if i["PK"].endswith("laptop-001"))["price"] == 1299
    assert "RCU consumed" in plain.stderr

    projected = run_cli(
        "get",
        str(tutorial_request(tmp_path, "batch-get-projection.json", table)),
        "--endpoint-url",
        ddb_local.url,
        "--ddb-json",
        check_status=0,
    )
    rows = [json.loads(line) for line in projected.stdout.splitlines()]
    # batch-headset-004 is not in batch-products.json: two of the three keys exist.
    assert len(rows) == 2
    assert all(set(row) == {"PK", "SK", "name", "price", "stock"} for row in rows)
    assert all("N" in row["price"] for row in rows)


def test_get_splits_any_number_of_keys_into_100s(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    source = tmp_path / "many.jsonl"
    source.write_text("".join(json.dumps({"PK": f"P#{i}", "SK": "D"}) + "\n" for i in range(250)))
    load_into(
        table,
        ddb_local.url,
        str(source),
        check_status=0,
    )
    request = tmp_path / "get.json"
    keys = [{"PK": {"S": f"P#{i}"}, "SK": {"S": "D"}} for i in range(250)]
    request.write_text(json.dumps({table: {"Keys": keys, "ConsistentRead": True}}))
    result = run_cli("get", str(request), "--endpoint-url", ddb_local.url, check_status=0)
    assert len(result.stdout.splitlines()) == 250
    assert "in 3 BatchGetItem calls" in result.stderr


def test_verify_reports_missing_and_different_items_by_line(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    source = tmp_path / "catalog.jsonl"
    records = [{"PK": f"P#{i}", "SK": "D", "price": 10 + i} for i in range(400)]
    records.append({"PK": "P#5", "SK": "D", "price": 999})  # a later write of P#5 wins
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    endpoint = ("--table", table, "--endpoint-url", ddb_local.url, "--no-progress")
    run_cli("load", str(source), *endpoint, check_status=0)
    clean = run_cli("verify", str(source), *endpoint, "--compare", check_status=0)
    assert "0 missing, 0 different" in clean.stderr

    client = sync_client(ddb_local.url)
    client.delete_item(TableName=table, Key={"PK": {"S": "P#7"}, "SK": {"S": "D"}})
    client.put_item(
        TableName=table, Item={"PK": {"S": "P#9"}, "SK": {"S": "D"}, "price": {"N": "1"}}
    )
    keys_only = run_cli("verify", str(source), *endpoint)
    assert keys_only.returncode == 1
    assert [json.loads(x)["line"] for x in keys_only.stdout.splitlines()] == [8]
    full = run_cli("verify", str(source), *endpoint, "--compare")
    assert full.returncode == 1
    problems = [json.loads(x) for x in full.stdout.splitlines()]
    assert [(p["line"], p["problem"]) for p in problems] == [(8, "missing"), (10, "different")]


def test_dry_run_validates_and_estimates_without_writing(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table()
    source = tmp_path / "catalog.jsonl"
    lines = [
        json.dumps({"PK": f"P#{i}", "SK": "D", "GSI1PK": "C", "GSI1SK": f"P#{i}"})
        for i in range(100)
    ]
    lines.insert(10, '{"SK": "no key"}')
    source.write_text("\n".join(lines) + "\n")
    result = load_into(
        table,
        ddb_local.url,
        str(source),
        "--dry-run",
        "--no-progress",
    )
    assert result.returncode == 1  # a reject, even in a dry run
    assert "would write        100" in result.stdout
    assert "WCU (estimated)    200" in result.stdout  # table + GSI1 for each item
    assert "4 BatchWriteItem (vs 100 PutItem" in result.stdout
    assert "$0.0001 at $0.625/million WRU" in result.stdout
    assert scan_table(ddb_local.url, table) == []


def test_key_templates_turn_a_plain_product_csv_into_single_table_items(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table()
    source = tmp_path / "products.csv"
    source.write_text(
        "sku,category,name,price\nlap-1,electronics,Laptop,1299.99\nmug-2,kitchen,Mug,9.50\n"
    )
    flags = (
        "--set",
        "PK=PRODUCT#{sku}",
        "--set",
        "SK=DETAILS",
        "--set",
        "GSI1PK=CATEGORY#{category}",
        "--set",
        "GSI1SK=PRODUCT#{sku}",
        "--csv-type",
        "price=N",
    )
    load_into(
        table,
        ddb_local.url,
        str(source),
        *flags,
        check_status=0,
    )
    stored = {i["PK"]["S"]: i for i in scan_table(ddb_local.url, table)}
    assert stored["PRODUCT#lap-1"] == {
        "PK": {"S": "PRODUCT#lap-1"},
        "SK": {"S": "DETAILS"},
        "GSI1PK": {"S": "CATEGORY#electronics"},
        "GSI1SK": {"S": "PRODUCT#lap-1"},
        "sku": {"S": "lap-1"},
        "category": {"S": "electronics"},
        "name": {"S": "Laptop"},
        "price": {"N": "1299.99"},
    }
    bad = load_into(
        table,
        ddb_local.url,
        str(source),
        "--set",
        "PK=PRODUCT#{id}",
        "--set",
        "SK=X",
    )
    assert bad.returncode == 2
    assert "--set PK=PRODUCT#{id}: the record has no field 'id'" in bad.stderr


def test_create_table_makes_an_on_demand_table_and_loads_it(
    ddb_local: DynamoDBLocal, tmp_path: Path
) -> None:
    source = tmp_path / "ids.jsonl"
    source.write_text("".join(json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(50)))
    args = ("load", str(source), "--table", "created-by-loader", "--create-table",
            "--key", "id:N", "--endpoint-url", ddb_local.url, "--no-progress")  # fmt: skip
    first = run_cli(*args, check_status=0)
    again = run_cli(*args, check_status=0)
    assert "created table 'created-by-loader' (on-demand), ACTIVE after" in first.stderr
    assert "table 'created-by-loader' exists already: loading into it" in again.stderr
    description = sync_client(ddb_local.url).describe_table(TableName="created-by-loader")["Table"]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert description["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert sorted(
        int(i["id"]["N"]) for i in scan_table(ddb_local.url, "created-by-loader")
    ) == list(range(50))
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_request_file_naming_two_tables_writes_to_each(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    first, second = make_table(gsi=False), make_table(gsi=False)

    def put(i: int) -> dict[str, Any]:
        return {"PutRequest": {"Item": {"PK": {"S": f"P#{i}"}, "SK": {"S": "D"}}}}

    request = tmp_path / "two-tables.json"
    request.write_text(
        json.dumps(
            {first: [put(i) for i in range(30)], second: [put(i) for i in range(100, 140)]},
            indent=2,
        )
    )
    run_cli("load", str(request), "--endpoint-url", ddb_local.url, "--no-progress", check_status=0)
    assert keys_of(scan_table(ddb_local.url, first)) == {f"P#{i}" for i in range(30)}
    assert keys_of(scan_table(ddb_local.url, second)) == {f"P#{i}" for i in range(100, 140)}
