"""Issue 3, items 7 and 8: bad input never stops good input; bad configuration stops the
job before any write, with one sentence.

A corpus of broken records, each between good ones, in JSONL and CSV files loaded in
one run: every broken record lands in the rejects file with its file, line and a reason
a person understands; every good record is in the table (read back directly from
DynamoDB Local and compared value by value); the exit status is 1.
"""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.conftest import TableFactory, run_cli, scan_table
from tests.ddb_local import DynamoDBLocal

pytestmark = pytest.mark.integration

_deserialize = TypeDeserializer().deserialize
Key = tuple[str, str]

# Each case: (bytes of one line, words its reason must contain). Lines are separated by
# good records in the files, so every broken record has a good neighbour on each side.
JSONL_CASES: list[tuple[bytes, tuple[str, ...]]] = [
    (b'{"PK": "BAD#1", "SK": "A", ', ("malformed JSON",)),
    (b'{"PK": "BAD#2" "SK": "A"}', ("malformed JSON",)),
    (b'["PK", "BAD#3"]', ("JSON object", "array")),
    (b"42", ("JSON object", "number")),
    (b'"a string"', ("JSON object", "string")),
    (b"null", ("JSON object", "null")),
    (b"true", ("JSON object", "boolean")),
    (b'{"PK": "BAD#8", "SK": "A", "name": "trunc', ("malformed JSON",)),
    (b'{"PK": "BAD#9\xff\xfe", "SK": "A"}', ("UTF-8",)),
    (b'{"SK": "A", "name": "no partition key"}', ("'PK'", "missing")),
    (b'{"PK": "BAD#11", "name": "no sort key"}', ("'SK'", "missing")),
    (b'{"PK": "", "SK": "A"}', ("'PK'", "empty")),
    (b'{"PK": "BAD#13", "SK": ""}', ("'SK'", "empty")),
    (b'{"PK": 42, "SK": "A"}', ("'PK'", "type S")),
    (b'{"PK": {"a": 1}, "SK": "A"}', ("'PK'", "type S")),
    (b'{"PK": null, "SK": "A"}', ("'PK'", "type S")),
    (b'{"PK": "BAD#17", "SK": ["A"]}', ("'SK'", "type S")),
    (b'{"PK": "BAD#18", "SK": "A", "blob": "' + b"x" * 410_000 + b'"}', ("400 KB",)),
    (
        b'{"PK": "BAD#19", "SK": "A", "n": 123456789012345678901234567890123456789}',
        ("39", "38"),
    ),
    (b'{"PK": "BAD#20", "SK": "A", "n": 1E+126}', ("1E+126", "range")),
    (b'{"PK": "BAD#21", "SK": "A", "n": -1E+126}', ("range",)),
    (b'{"PK": "BAD#22", "SK": "A", "n": 1E-131}', ("range",)),
    (b'{"PK": "BAD#23", "SK": "A", "n": NaN}', ("NaN",)),
    (b'{"PK": "BAD#24", "SK": "A", "n": Infinity}', ("Infinity",)),
    (b'{"PK": "BAD#25", "SK": "A", "n": {"deep": -Infinity}}', ("Infinity",)),
]
# The last line of the JSONL file: truncated, no newline at the end of the file.
JSONL_TAIL = (b'{"PK": "BAD#26", "SK": "A", "n": 1', ("malformed JSON",))

CSV_HEADER = b"PK,SK,name,note,n"
CSV_CASES: list[tuple[bytes, tuple[str, ...]]] = [
    (b"BAD#C1,A,too,few", ("4 fields", "header has 5")),
    (b"BAD#C2,A,too,many,1,extra", ("6 fields", "header has 5")),
    (b",A,no partition key,,1", ("'PK'", "missing")),
    (b"BAD#C4,,no sort key,,1", ("'SK'", "missing")),
    (b"BAD#C5,A,\xff\xfe,,1", ("UTF-8",)),
    (b"BAD#C6,A,39 digits,,123456789012345678901234567890123456789", ("'n'", "39", "38")),
    (b"BAD#C7,A,out of range,,1E+126", ("'n'", "range")),
    (b"BAD#C8,A,nan,,NaN", ("'n'", "NaN")),
    (b"BAD#C9,A,inf,,Infinity", ("'n'", "Infinity")),
    (b"BAD#C10,A,word,,abc", ("'n'", "not a number")),
    # Two 250 KB cells: every field is under the CSV field limit, the item is over 400 KB.
    (b"BAD#C11,A," + b"y" * 250_000 + b"," + b"z" * 250_000 + b",1", ("400 KB",)),
    (b'BAD#C12,A,"quote" inside,,1', ("quote",)),
]
# The last line of the CSV file: a quote that is never closed.
CSV_TAIL = (b'BAD#C13,A,"never closed,,1', ("unclosed quote",))


def good_json(n: int) -> bytes:
    value = {"PK": f"GOOD#{n}", "SK": "A", "n": n, "price": f"{n}.99", "name": f"good é {n}"}
    return json.dumps(value, ensure_ascii=False).encode()


def good_csv(n: int) -> bytes:
    return f'GOOD#C{n},A,"good, ""quoted"" {n}",note {n},{n}.5'.encode()


def build(
    cases: list[tuple[bytes, tuple[str, ...]]],
    tail: tuple[bytes, tuple[str, ...]],
    good: Any,
    header: bytes | None,
) -> tuple[bytes, dict[int, tuple[bytes, tuple[str, ...]]], list[bytes]]:
    """File bytes (BOM first), the bad lines by number, and the good lines."""
    lines: list[bytes] = [header] if header else []
    bad: dict[int, tuple[bytes, tuple[str, ...]]] = {}
    goods: list[bytes] = []
    n = 0
    for case in cases:
        for _ in range(2):
            n += 1
            goods.append(good(n))
            lines.append(goods[-1])
        lines.append(case[0])
        bad[len(lines)] = case
        if n == 4:
            lines.append(b"")  # a blank line is no record
    n += 1
    goods.append(good(n))
    lines.append(goods[-1])
    lines.append(tail[0])
    bad[len(lines)] = tail
    data = b"\xef\xbb\xbf" + b"\n".join(lines)  # a BOM, and no newline at the very end
    return data, bad, goods


def stored(url: str, table: str) -> dict[Key, dict[str, Any]]:
    items = [{k: _deserialize(v) for k, v in item.items()} for item in scan_table(url, table)]
    return {(item["PK"], item["SK"]): item for item in items}


def test_every_broken_record_is_rejected_with_its_line_and_every_good_one_is_written(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    jsonl_data, jsonl_bad, jsonl_good = build(JSONL_CASES, JSONL_TAIL, good_json, None)
    csv_data, csv_bad, csv_good = build(CSV_CASES, CSV_TAIL, good_csv, CSV_HEADER)
    jsonl, csv, dup = tmp_path / "corpus.jsonl", tmp_path / "corpus.csv", tmp_path / "dup.csv"
    jsonl.write_bytes(jsonl_data)
    csv.write_bytes(csv_data)
    dup.write_bytes(b"PK,SK,name,name\nDUP#1,A,x,y\nDUP#2,A,x,y\n")
    dup_bad = {2: (b"DUP#1,A,x,y", ("'name'", "twice")), 3: (b"DUP#2,A,x,y", ("'name'", "twice"))}
    table = make_table(gsi=False)
    rejects, report = tmp_path / "rejects.jsonl", tmp_path / "report.json"

    result = run_cli(
        "load", str(jsonl), str(csv), str(dup), "--table", table,
        "--endpoint-url", ddb_local.url, "--csv-type", "n=N",
        "--rejects", str(rejects), "--report", str(report), "--no-progress",
    )  # fmt: skip

    assert result.returncode == 1, result.stderr[-3000:]  # finished, with rejects
    assert "Traceback" not in result.stderr

    # Every good record, the first one after the BOM included, is in the table, exactly.
    expected: dict[Key, dict[str, Any]] = {}
    for line in jsonl_good:
        value = json.loads(line, parse_float=Decimal, parse_int=Decimal)
        expected[(value["PK"], value["SK"])] = value
    for n in range(1, len(csv_good) + 1):
        expected[(f"GOOD#C{n}", "A")] = {
            "PK": f"GOOD#C{n}",
            "SK": "A",
            "name": f'good, "quoted" {n}',
            "note": f"note {n}",
            "n": Decimal(f"{n}.5"),
        }
    table_now = stored(ddb_local.url, table)
    assert table_now.keys() == expected.keys(), sorted(table_now.keys() ^ expected.keys())[:10]
    for key, value in expected.items():
        assert table_now[key] == value, key

    # Every broken record, and nothing else, is in the rejects file, with a reason.
    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    want = {(str(jsonl), n): case for n, case in jsonl_bad.items()}
    want |= {(str(csv), n): case for n, case in csv_bad.items()}
    want |= {(str(dup), n): case for n, case in dup_bad.items()}
    got = {(row["source"], row["line"]): row for row in rows}
    assert len(rows) == len(got), "a record rejected twice"
    assert sorted(got) == sorted(want)
    for where, (text, words) in want.items():
        row = got[where]
        for word in words:
            assert word.lower() in row["reason"].lower(), (where, word, row["reason"])
        # The line as it was in the file: as text, and byte for byte where it is not UTF-8.
        raw = base64.b64decode(row["raw_base64"]) if "raw_base64" in row else row["record"].encode()
        assert raw == text, where
        assert row["record"] == text.decode(errors="replace"), where

    numbers = json.loads(report.read_text())
    assert numbers["records_read"] == len(expected) + len(want)
    assert numbers["items_written"] == len(expected)
    assert numbers["rejected"] == len(want)


def test_reasons_stay_short_when_the_bad_value_is_huge(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    source = tmp_path / "big.csv"
    source.write_bytes(b"PK,SK,n\nGOOD#1,A,1\nBAD#1,A," + b"9x" * 150_000 + b"\nGOOD#2,A,2\n")
    table = make_table(gsi=False)
    rejects = tmp_path / "rejects.jsonl"

    result = run_cli(
        "load", str(source), "--table", table, "--endpoint-url", ddb_local.url,
        "--csv-type", "n=N", "--rejects", str(rejects), "--no-progress",
    )  # fmt: skip

    assert result.returncode == 1, result.stderr[-2000:]
    assert set(stored(ddb_local.url, table)) == {("GOOD#1", "A"), ("GOOD#2", "A")}
    (row,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert row["line"] == 3
    assert "not a number" in row["reason"]
    assert len(row["reason"]) <= 300, f"a reason of {len(row['reason']):,} characters"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("in.jsonl", b'{"PK": "P#1", "SK": "A", "n": 1}\n{"PK": "P#2", "SK": "A", "n": 2}\n'),
        ("in.csv", b"PK,SK,n\nP#1,A,1\nP#2,A,2\n"),
    ],
    ids=["jsonl", "csv"],
)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_key_schema_the_input_does_not_carry_stops_before_any_write(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    tmp_path: Path,
    name: str,
    data: bytes,
    processes: str,
) -> None:
    source = tmp_path / name
    source.write_bytes(data)
    table = make_table(keys=(("id", "S"),), gsi=False)  # records carry PK/SK, not id

    result = run_cli(
        "load", str(source), "--table", table, "--endpoint-url", ddb_local.url, "--no-progress",
        "--rejects", str(tmp_path / "rejects.jsonl"), "--processes", processes,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip()
    assert message.count("\n") == 0, message  # one sentence
    assert "Traceback" not in message
    assert "'id'" in message or "(id)" in message, message
    assert scan_table(ddb_local.url, table) == []
    assert result.stdout == ""  # no summary: the job never started


def test_without_rejects_a_default_file_in_the_working_folder_holds_them_and_is_named(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"PK": "a", "SK": "1"}\n{"PK": "b"}\n{"PK": "c", "SK": "1"}\n')
    table = make_table(gsi=False)
    here = tmp_path / "here"
    here.mkdir()
    flags = ("--table", table, "--endpoint-url", ddb_local.url, "--no-progress")

    first = run_cli("load", str(source), *flags, check_status=1, cwd=here)
    second = run_cli("load", str(source), *flags, check_status=1, cwd=here)

    files = sorted(here.glob("ddb-loader-rejects-*.jsonl"))
    assert len(files) == 2, "a second job's rejects never go into an earlier job's file"
    for default in files:
        (row,) = [json.loads(line) for line in default.read_text().splitlines()]
        assert (row["source"], row["line"], row["record"]) == (str(source), 2, '{"PK": "b"}')
    for result in (first, second):
        named = re.search(r"\(in (ddb-loader-rejects-\S+\.jsonl)\)", result.stdout)
        assert named is not None, result.stdout
        assert (here / named[1]) in files
        assert f"{source}:2: " in result.stdout  # the first reasons, printed
    assert {item["PK"]["S"] for item in scan_table(ddb_local.url, table)} == {"a", "c"}


def test_a_clean_job_leaves_no_rejects_file(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    clean = tmp_path / "clean"
    clean.mkdir()
    (tmp_path / "z.jsonl").write_bytes(b'{"PK": "z", "SK": "1"}\n')
    run_cli("load", str(tmp_path / "z.jsonl"), "--table", table, "--endpoint-url",
            ddb_local.url, "--no-progress", check_status=0, cwd=clean)  # fmt: skip
    assert list(clean.iterdir()) == []


def test_a_rejects_file_that_cannot_be_written_stops_the_job_before_any_write(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"PK": "a", "SK": "1"}\n')
    table = make_table(gsi=False)

    nowhere = tmp_path / "no" / "such" / "r.jsonl"
    result = run_cli("load", str(source), "--table", table, "--endpoint-url", ddb_local.url,
                     "--rejects", str(nowhere), check_status=2)  # fmt: skip

    assert "Cannot write the rejects file" in result.stderr
    assert "Traceback" not in result.stderr
    assert scan_table(ddb_local.url, table) == []
