"""Amazon Ion made by amazon-ion, loaded by the command and read back from DynamoDB
Local: every Ion type's mapping, the S3 export's `{Item: …}` shape with its sets,
gzip, values numbered in rejects, and a broken stream in one sentence."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import amazon.ion.simpleion as ion
import pytest
from amazon.ion.simple_types import IonPyList

from tests.conftest import TableFactory, assert_table_equals, load_into, stored
from tests.ddb_local import DynamoDBLocal

pytestmark = pytest.mark.integration

BIG = 12345678901234567890123456789012345678  # 38 digits: an int, never a float


def annotated(kind: str, values: list[Any]) -> IonPyList:
    return IonPyList.from_value(ion.IonType.LIST, values, annotations=(f"$dynamodb_{kind}",))


def export_item(i: int) -> dict[str, Any]:
    """An item as DynamoDB's Export to S3 in ION writes it: `{Item: {...}}`, sets annotated."""
    return {
        "Item": {
            "PK": f"p#{i}",
            "SK": "v1",
            "price": Decimal(f"{i}.10"),
            "big": BIG,
            "raw": f"b{i}".encode(),
            "tags": annotated("SS", ["a", "b"]),
            "sizes": annotated("NS", [Decimal(1), Decimal("2.5")]),
            "list": [1, "x", True],
            "dims": {"w": i, "ok": False},
            "gone": None,
        }
    }


def expected(i: int) -> dict[str, Any]:
    return {
        "PK": f"p#{i}",
        "SK": "v1",
        "price": Decimal(f"{i}.10"),
        "big": Decimal(BIG),
        "raw": f"b{i}".encode(),
        "tags": {"a", "b"},
        "sizes": {Decimal(1), Decimal("2.5")},
        "list": [Decimal(1), "x", True],
        "dims": {"w": Decimal(i), "ok": False},
        "gone": None,
    }


def read_back(url: str, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    def plain(value: Any) -> Any:
        if isinstance(value, set | frozenset):
            return {plain(v) for v in value}
        return bytes(value) if hasattr(value, "value") and isinstance(value.value, bytes) else value

    return {k: {n: plain(v) for n, v in item.items()} for k, item in stored(url, table).items()}


@pytest.mark.parametrize("name", ["export.ion.gz", "export.ion"])
def test_an_ion_export_lands_type_for_type(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path, name: str
) -> None:
    text = ion.dumps([export_item(i) for i in range(600)], sequence_as_stream=True, binary=False)
    body = text.encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    table = make_table()
    load_into(table, ddb_local.url, str(path), check_status=0)
    assert_table_equals(
        read_back(ddb_local.url, table), {(f"p#{i}", "v1"): expected(i) for i in range(600)}
    )


def test_plain_structs_load_and_a_value_that_is_no_struct_is_rejected_by_its_number(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    path = tmp_path / "items.ion"
    path.write_text(
        '{PK:"a", SK:"v1", when:2026-12-04T10:00:00Z, f:1.5e0}\n"not an item"\n{PK:"b", SK:"v1"}\n'
    )
    table = make_table()
    rejects = tmp_path / "rejects.jsonl"
    load_into(table, ddb_local.url, str(path), "--rejects", str(rejects), check_status=1)
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (reject["source"], reject["line"]) == (str(path), 2)
    assert stored(ddb_local.url, table) == {
        ("a", "v1"): {
            "PK": "a",
            "SK": "v1",
            "when": "2026-12-04T10:00:00+00:00",
            "f": Decimal("1.5"),
        },
        ("b", "v1"): {"PK": "b", "SK": "v1"},
    }


def test_a_broken_ion_stream_is_one_sentence(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    path = tmp_path / "broken.ion"
    path.write_text('{PK:"a", SK:"v1"}\n{PK:"b", SK:\n')
    table = make_table()
    result = load_into(table, ddb_local.url, str(path))
    assert result.returncode in (2, 3), result.stderr
    assert "is not valid Ion" in result.stderr
    assert "Traceback" not in result.stderr
