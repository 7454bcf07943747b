"""Sources: every input line becomes a Record or a Reject with its line number,
bad input never hides good input, and chunking never changes what is read."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from loader.codec import CodecError, Num, from_plain
from loader.errors import ConfigError, SourceError
from loader.rejects import RejectsFile
from loader.sources import Chunk, Record, Reject, _lines, detect_format, open_source
from loader.sources.csvfile import read_csv
from loader.sources.jsonl import read_jsonl
from loader.sources.typed import expand, read_ddb_json, read_request_items

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TABLE = "demo-ecommerce-freetier"
DEFAULT_CHUNK = _lines.CHUNK_BYTES


async def read_all(source: AsyncIterator[Chunk]) -> list[Record | Reject]:
    out: list[Record | Reject] = []
    async for records, _offset in source:
        out.extend(records)
    return out


async def jsonl(path: Path) -> list[Record | Reject]:
    return await read_all(read_jsonl(str(path), "in", {}))


async def csv_rows(path: Path, types: Mapping[str, str] | None = None) -> list[Record | Reject]:
    return await read_all(read_csv(str(path), "in", types or {}))


def lines_of(results: list[Record | Reject]) -> list[int]:
    return [r.line for r in results]


def records(results: list[Record | Reject]) -> list[Record]:
    return [r for r in results if isinstance(r, Record)]


def rejects(results: list[Record | Reject]) -> list[Reject]:
    return [r for r in results if isinstance(r, Reject)]


@pytest.fixture(params=[DEFAULT_CHUNK, 7, 1], ids=["1MiB-chunks", "7-byte-chunks", "1-byte-chunks"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Runs a test with the real chunk size and with chunks cut inside every line."""
    size: int = request.param
    monkeypatch.setattr(_lines, "CHUNK_BYTES", size)
    return size


# --- JSON Lines -----------------------------------------------------------------------


async def test_jsonl_good_lines_become_records_with_their_line_numbers(
    tmp_path: Path, chunking: int
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "a", "n": 1}\n{"id": "b", "price": 0.1}\n{"id": "c"}\n')
    results = await jsonl(path)
    assert results == [
        Record("in", 1, {"id": "a", "n": 1}, b'{"id": "a", "n": 1}'),
        Record("in", 2, {"id": "b", "price": Num("0.1")}, b'{"id": "b", "price": 0.1}'),
        Record("in", 3, {"id": "c"}, b'{"id": "c"}'),
    ]
    first, second, _ = records(results)
    assert type(first.value["n"]) is int
    assert type(second.value["price"]) is Num


async def test_jsonl_numbers_arrive_as_exact_text(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"n": 12345678901234567890123456789012345678, "f": 0.1}\n')
    (record,) = await jsonl(path)
    assert isinstance(record, Record)
    assert type(record.value["n"]) is int
    assert type(record.value["f"]) is Num
    assert record.value == {"n": 12345678901234567890123456789012345678, "f": "0.1"}
    assert from_plain(record.value)[0] == {
        "n": {"N": "12345678901234567890123456789012345678"},
        "f": {"N": "0.1"},
    }


async def test_jsonl_blank_lines_are_skipped_but_still_counted(
    tmp_path: Path, chunking: int
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\n{"id": "a"}\n\n   \n\t\n{"id": "b"}\n\n')
    results = await jsonl(path)
    assert all(isinstance(r, Record) for r in results)
    assert lines_of(results) == [2, 6]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b'{"id": "x",}', "malformed JSON at byte 11: a quoted attribute name was expected"),
        (b'{"id": "x", "n": 1', "malformed JSON at byte 18: the record ends early (a truncated"),
        (b'{"id": "x"} {"id": "y"}', "malformed JSON at byte 12: a second value after the record"),
        (b"\xff", "invalid UTF-8 at byte 0"),  # a bad byte outside a string
        (b'{"id": "caf\xc3"}', "invalid UTF-8 at byte 11"),
        (b'\xef\xbb\xbf{"id": "c"}', "a byte-order mark (BOM) at byte 0: only a file's first"),
        (b'{"n": NaN}', "NaN is not a number DynamoDB can store"),
        (b'{"n": -Infinity}', "-Infinity is not a number DynamoDB can store"),
    ],
)
async def test_jsonl_a_bad_line_is_rejected_with_its_line_and_good_lines_around_it_survive(
    tmp_path: Path, chunking: int, bad: bytes, reason: str
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "a"}\n' + bad + b'\n{"id": "b"}\n')
    first, middle, last = await jsonl(path)
    assert isinstance(first, Record)
    assert first.line == 1
    assert isinstance(middle, Reject)
    assert middle.line == 2
    assert reason in middle.reason
    assert middle.record == bad  # the raw line, as read
    assert isinstance(last, Record)
    assert (last.line, last.value) == (3, {"id": "b"})
    # The rejects file shows the line as text, and keeps bytes that are not UTF-8 exactly.
    rejects_path = tmp_path / "rejects.jsonl"
    rejects_file = RejectsFile(str(rejects_path))
    rejects_file.add(middle.source, middle.line, middle.reason, middle.record)
    rejects_file.close()
    row = json.loads(rejects_path.read_bytes())
    assert row.pop("raw_base64", None) == (None if _utf8(bad) else base64.b64encode(bad).decode())
    assert row == {
        "source": "in",
        "line": 2,
        "reason": middle.reason,
        "record": bad.decode(errors="replace"),
    }


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize(("line", "kind"), [("[1, 2]", "an array"), ("42", "a number")])
async def test_jsonl_a_line_that_is_not_an_object_is_refused_by_the_codec_with_its_line(
    tmp_path: Path, line: str, kind: str
) -> None:
    # The source only parses; the codec judges the shape, and the pipeline rejects with
    # this Record's line number.
    path = tmp_path / "a.jsonl"
    path.write_text(f'{{"id": "a"}}\n{line}\n')
    results = await jsonl(path)
    assert isinstance(results[1], Record)
    assert results[1].line == 2
    with pytest.raises(CodecError, match=f"must be a JSON object, got {kind}"):
        from_plain(results[1].value)


@pytest.mark.parametrize("chunk", [DEFAULT_CHUNK, 7, 3])
async def test_jsonl_a_utf8_bom_at_the_start_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(_lines, "CHUNK_BYTES", chunk)
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n{"id": "b"}\n')
    assert await jsonl(path) == [
        Record("in", 1, {"id": "a"}, b'{"id": "a"}'),
        Record("in", 2, {"id": "b"}, b'{"id": "b"}'),
    ]


async def test_jsonl_gz_with_a_bom_reads_the_same_with_small_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lines, "CHUNK_BYTES", 7)
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'\xef\xbb\xbf{"id": "a"}\n'))
    assert await jsonl(path) == [Record("in", 1, {"id": "a"}, b'{"id": "a"}')]


SAMPLE_JSONL = (
    b'{"id": "a", "name": "\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"}\r\n'
    b"\r\n"
    b'{"id": "b", "tags": ["x", "y"], "n": 12345678901234567890123456789012345678}\n'
    b"not json\n"
    b'{"id": "c", "long": "' + b"z" * 300 + b'"}\r\n'
    b"\xfe\xff\n"
    b'{"id": "d"}'  # no final newline
)


async def test_jsonl_results_do_not_depend_on_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(SAMPLE_JSONL)
    whole = await jsonl(path)
    assert lines_of(whole) == [1, 3, 4, 5, 6, 7]
    assert [type(r).__name__ for r in whole] == [
        "Record",
        "Record",
        "Reject",
        "Record",
        "Reject",
        "Record",
    ]
    for size in (7, 1, 2, 64):
        monkeypatch.setattr(_lines, "CHUNK_BYTES", size)
        assert await jsonl(path) == whole, f"chunk size {size}"


async def test_jsonl_crlf_line_ends_are_removed(tmp_path: Path, chunking: int) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "a"}\r\n{"id": "b"}\r\n')
    results = records(await jsonl(path))
    assert [(r.line, r.text) for r in results] == [(1, b'{"id": "a"}'), (2, b'{"id": "b"}')]


async def test_jsonl_a_final_line_without_newline_is_read(tmp_path: Path, chunking: int) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}')
    assert [(r.line, r.value) for r in records(await jsonl(path))] == [
        (1, {"id": "a"}),
        (2, {"id": "b"}),
    ]


@pytest.mark.parametrize("data", [b"\n1", b"\n\n", b"1\n"])
async def test_jsonl_a_file_shorter_than_a_bom_is_still_split_into_lines(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    expected = [i + 1 for i, line in enumerate(data.split(b"\n")) if line]
    assert lines_of(await jsonl(path)) == expected


async def test_jsonl_gz_reads_the_same_as_plain(tmp_path: Path, chunking: int) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(SAMPLE_JSONL)
    packed = tmp_path / "a.jsonl.gz"
    packed.write_bytes(gzip.compress(SAMPLE_JSONL))
    assert await jsonl(packed) == await jsonl(plain)


async def test_jsonl_concatenated_gzip_members_read_as_one_stream(
    tmp_path: Path, chunking: int
) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "a"}\n') + gzip.compress(b'{"id": "b"}\n'))
    assert [(r.line, r.value) for r in records(await jsonl(path))] == [
        (1, {"id": "a"}),
        (2, {"id": "b"}),
    ]


async def test_a_truncated_gzip_file_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "a"}\n' * 1000)[:-20])
    with pytest.raises(SourceError, match="ends in the middle of its gzip stream"):
        await jsonl(path)


async def test_a_file_that_is_not_gzip_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(b'{"id": "a"}\n')
    with pytest.raises(SourceError, match="is not valid gzip"):
        await jsonl(path)


async def test_a_missing_file_is_a_source_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.jsonl"
    with pytest.raises(SourceError, match=r"Cannot open .*missing\.jsonl"):
        await jsonl(path)


# --- CSV ------------------------------------------------------------------------------


def write_csv(tmp_path: Path, text: str, name: str = "a.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


async def test_csv_the_header_names_attributes_and_every_cell_is_a_string(
    tmp_path: Path, chunking: int
) -> None:
    path = write_csv(tmp_path, "id,price,active\np1,12.50,true\np2,7,no\n")
    results = await csv_rows(path)
    assert results == [
        Record("in", 2, {"id": "p1", "price": "12.50", "active": "true"}, "p1,12.50,true"),
        Record("in", 3, {"id": "p2", "price": "7", "active": "no"}, "p2,7,no"),
    ]
    assert all(type(v) is str for r in records(results) for v in r.value.values())


async def test_csv_an_empty_cell_leaves_its_attribute_out(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "id,price,note\np1,,x\np2,3,\n")
    assert [r.value for r in records(await csv_rows(path))] == [
        {"id": "p1", "note": "x"},
        {"id": "p2", "price": "3"},
    ]


async def test_csv_typed_columns_become_numbers_booleans_and_json(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        'id,price,active,meta\np1, 12.50 ,yes,"{""a"": [1, 2.5], ""b"": null}"\n'
        "p2,12345678901234567890123456789012345678,F,[]\n",
    )
    types = {"price": "N", "active": "BOOL", "meta": "JSON"}
    first, second = records(await csv_rows(path, types))
    assert first.value == {
        "id": "p1",
        "price": "12.50",
        "active": True,
        "meta": {"a": [1, "2.5"], "b": None},
    }
    assert isinstance(first.value["price"], Num)
    assert type(first.value["meta"]["a"][0]) is int
    assert type(first.value["meta"]["a"][1]) is Num
    assert from_plain(first.value)[0]["price"] == {"N": "12.50"}
    assert from_plain(first.value)[0]["meta"] == {
        "M": {"a": {"L": [{"N": "1"}, {"N": "2.5"}]}, "b": {"NULL": True}}
    }
    assert second.value == {
        "id": "p2",
        "price": "12345678901234567890123456789012345678",
        "active": False,
        "meta": [],
    }


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("Y", True),
        ("t", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("n", False),
        ("f", False),
    ],
)
async def test_csv_bool_columns_accept_the_usual_spellings(
    tmp_path: Path, cell: str, value: bool
) -> None:
    path = write_csv(tmp_path, f"id,active\np1,{cell}\n")
    (record,) = await csv_rows(path, {"active": "BOOL"})
    assert isinstance(record, Record)
    assert record.value["active"] is value


@pytest.mark.parametrize(
    ("column", "cell", "reason"),
    [
        ("price", "abc", "column 'price': 'abc' is not a number"),
        ("price", "NaN", "column 'price': NaN is not a number DynamoDB can store"),
        ("price", "1E+200", "column 'price': number 1E+200 is out of DynamoDB's range"),
        ("active", "maybe", "column 'active': 'maybe' is not a boolean"),
        ("meta", "{oops", "column 'meta': malformed JSON"),
    ],
)
async def test_csv_a_cell_that_does_not_fit_its_type_rejects_the_row_naming_the_column(
    tmp_path: Path, column: str, cell: str, reason: str
) -> None:
    row = {"price": "1", "active": "true", "meta": "{}"}
    row[column] = cell
    path = write_csv(
        tmp_path,
        "id,price,active,meta\n"
        "ok1,1,true,{}\n"
        f"bad,{row['price']},{row['active']},{row['meta']}\n"
        "ok2,2,false,{}\n",
    )
    first, middle, last = await csv_rows(path, {"price": "N", "active": "BOOL", "meta": "JSON"})
    assert isinstance(middle, Reject)
    assert middle.line == 3
    assert reason in middle.reason
    assert middle.record.startswith("bad,")
    assert isinstance(first, Record)
    assert isinstance(last, Record)
    assert (first.line, last.line) == (2, 4)


@pytest.mark.parametrize(("row", "fields"), [("p1,1", 2), ("p1,1,2,3", 4), ("p1", 1)])
async def test_csv_a_ragged_row_is_rejected_with_its_field_counts(
    tmp_path: Path, chunking: int, row: str, fields: int
) -> None:
    path = write_csv(tmp_path, f"id,a,b\nok,1,2\n{row}\nok2,3,4\n")
    results = await csv_rows(path)
    assert lines_of(results) == [2, 3, 4]
    bad = results[1]
    assert isinstance(bad, Reject)
    assert bad.reason == f"row has {fields} fields; the header has 3"
    assert bad.record == row


async def test_csv_a_duplicate_header_column_rejects_every_row_naming_the_column(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path, "id,name,id\n1,a,2\n3,b,4\n")
    results = await csv_rows(path)
    assert lines_of(results) == [2, 3]
    assert all(isinstance(r, Reject) and "column 'id' twice" in r.reason for r in results)


async def test_csv_an_empty_header_column_rejects_every_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "id,,name\n1,x,a\n")
    (result,) = await csv_rows(path)
    assert isinstance(result, Reject)
    assert "empty column name" in result.reason


async def test_csv_an_unclosed_quote_at_the_end_is_rejected_and_earlier_rows_survive(
    tmp_path: Path, chunking: int
) -> None:
    path = write_csv(tmp_path, 'id,desc\np1,fine\np2,"never closed\nmore text\n')
    first, bad = await csv_rows(path)
    assert isinstance(first, Record)
    assert first.value == {"id": "p1", "desc": "fine"}
    assert isinstance(bad, Reject)
    assert bad.line == 3
    assert "unclosed quote" in bad.reason


async def test_csv_text_after_a_closing_quote_is_rejected_not_merged(tmp_path: Path) -> None:
    path = write_csv(tmp_path, 'id,desc\np1,"quoted"tail\np2,ok\n')
    bad, good = await csv_rows(path)
    assert isinstance(bad, Reject)
    assert bad.line == 2
    assert "text after a closing quote" in bad.reason
    assert isinstance(good, Record)
    assert (good.line, good.value) == (3, {"id": "p2", "desc": "ok"})


MULTILINE_CSV = (
    "id,desc,price\n"
    'p1,"line one\nline two, with a comma\n""quoted"", end",10\n'
    "p2,plain,20\n"
    "\n"
    'p3,"a\nb",30\n'
    "p4,last,40\n"
)


async def test_csv_a_quoted_field_spanning_lines_is_one_record_at_its_first_line(
    tmp_path: Path, chunking: int
) -> None:
    path = write_csv(tmp_path, MULTILINE_CSV)
    results = await csv_rows(path)
    assert all(isinstance(r, Record) for r in results)
    assert [(r.line, r.value["id"], r.value["price"]) for r in records(results)] == [
        (2, "p1", "10"),
        (5, "p2", "20"),
        (7, "p3", "30"),
        (9, "p4", "40"),
    ]


async def test_csv_a_quoted_field_keeps_its_newlines(tmp_path: Path, chunking: int) -> None:
    path = write_csv(tmp_path, MULTILINE_CSV)
    values = [r.value["desc"] for r in records(await csv_rows(path))]
    assert values == ['line one\nline two, with a comma\n"quoted", end', "plain", "a\nb", "last"]


async def test_csv_results_do_not_depend_on_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(
        tmp_path,
        "id,desc,n\r\n" + MULTILINE_CSV.split("\n", 1)[1] + 'p5,"unclosed\r\np6,x,1\r\n',
    )
    whole = await csv_rows(path, {"n": "N"})
    assert len(whole) == 5
    for size in (1, 2, 7, 16, 64):
        monkeypatch.setattr(_lines, "CHUNK_BYTES", size)
        assert await csv_rows(path, {"n": "N"}) == whole, f"chunk size {size}"


async def test_csv_an_inch_mark_inside_an_unquoted_field_is_kept_literally(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path, 'id,desc,size\np1,15" screen,3\n')
    (record,) = await csv_rows(path)
    assert isinstance(record, Record)
    assert record.value == {"id": "p1", "desc": '15" screen', "size": "3"}


async def test_csv_blank_lines_are_skipped_and_crlf_is_removed(
    tmp_path: Path, chunking: int
) -> None:
    path = write_csv(tmp_path, "\r\nid,name\r\n\r\np1,a\r\np2,b")
    assert [(r.line, r.value) for r in records(await csv_rows(path))] == [
        (4, {"id": "p1", "name": "a"}),
        (5, {"id": "p2", "name": "b"}),
    ]


async def test_csv_a_bom_before_the_header_is_not_part_of_the_first_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbfid,name\np1,a\n")
    (record,) = await csv_rows(path)
    assert isinstance(record, Record)
    assert record.value == {"id": "p1", "name": "a"}


async def test_csv_gz_reads_the_same_as_plain(tmp_path: Path, chunking: int) -> None:
    plain = write_csv(tmp_path, MULTILINE_CSV)
    packed = tmp_path / "a.csv.gz"
    packed.write_bytes(gzip.compress(MULTILINE_CSV.encode()))
    assert await csv_rows(packed) == await csv_rows(plain)


async def test_csv_invalid_utf8_rejects_its_row_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"id,name\np1,a\np2,\xff\np3,c\n")
    results = await csv_rows(path)
    assert sorted(lines_of(results)) == [2, 3, 4]
    (bad,) = rejects(results)
    assert (bad.line, bad.reason, bad.record) == (3, "invalid UTF-8 at byte 3", b"p2,\xff")
    assert [r.value["id"] for r in records(results)] == ["p1", "p3"]


async def test_csv_results_come_in_file_order_even_with_an_invalid_utf8_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"id,name\np1,a\np2,\xff\np3,c\n")
    assert lines_of(await csv_rows(path)) == [2, 3, 4]


# --- format detection ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.csv", "csv"),
        ("a.jsonl.gz", "jsonl"),
        ("a.csv.gz", "csv"),
        ("A.JSONL", "jsonl"),
        ("dir.v2/a.ndjson.gz", "jsonl"),
    ],
)
def test_detect_format_by_suffix(tmp_path: Path, name: str, fmt: str) -> None:
    assert detect_format(str(tmp_path / name)) == fmt


@pytest.mark.parametrize("fixture", ["batch-products.json", "mixed-batch.json", "large-batch.json"])
def test_detect_format_a_pretty_request_file_is_request_items(fixture: str) -> None:
    assert detect_format(str(FIXTURES / fixture)) == "request-items"


def test_detect_format_a_compact_request_file_is_request_items(tmp_path: Path) -> None:
    path = tmp_path / "req.json"
    path.write_text(json.dumps(json.loads((FIXTURES / "mixed-batch.json").read_text())))
    assert detect_format(str(path)) == "request-items"


def test_detect_format_a_gzipped_pretty_request_file_is_request_items(tmp_path: Path) -> None:
    path = tmp_path / "req.json.gz"
    path.write_bytes(gzip.compress((FIXTURES / "mixed-batch.json").read_bytes()))
    assert detect_format(str(path)) == "request-items"


@pytest.mark.parametrize(
    "first_line",
    [
        '{"PK": {"S": "a"}, "n": {"N": "1"}}',
        '{"Item": {"PK": {"S": "a"}}}',
        '{"PutRequest": {"Item": {"PK": {"S": "a"}}}}',
    ],
)
def test_detect_format_one_item_per_line_json_is_ddb_json(tmp_path: Path, first_line: str) -> None:
    path = tmp_path / "items.json"
    path.write_text(first_line + "\n" + first_line + "\n")
    assert detect_format(str(path)) == "ddb-json"


def test_detect_format_a_folder_is_a_ddb_json_export(tmp_path: Path) -> None:
    assert detect_format(str(tmp_path)) == "ddb-json"


@pytest.mark.parametrize("name", ["a.txt", "data", "a.gz", "-"])
def test_detect_format_an_unknown_name_asks_for_format(tmp_path: Path, name: str) -> None:
    path = name if name == "-" else str(tmp_path / name)
    with pytest.raises(ConfigError, match="pass --format"):
        detect_format(path)


def test_detect_format_a_large_compact_request_file_is_request_items(tmp_path: Path) -> None:
    items = [
        {"PutRequest": {"Item": {"PK": {"S": f"p{i}"}, "pad": {"S": "x" * 400}}}}
        for i in range(200)
    ]
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"tbl": items}))
    assert path.stat().st_size > 64 * 1024
    assert detect_format(str(path)) == "request-items"


@pytest.mark.parametrize("name", ["a.tsv", "a.tsv.gz", "A.TSV"])
def test_detect_format_a_tsv_file_is_not_taken_for_csv(tmp_path: Path, name: str) -> None:
    # read_csv always splits on commas, so .tsv is not a known suffix: a tab-separated
    # row must not silently become one attribute named 'id\tname'.
    path = tmp_path / name
    path.write_text("id\tname\np1\tLaptop, 15 inch\n")
    with pytest.raises(ConfigError, match="pass --format"):
        detect_format(str(path))


# --- request-items files -----------------------------------------------------------------


async def request_items(path: Path) -> list[Record | Reject]:
    return await read_all(read_request_items(str(path), "req", {}))


async def test_request_items_puts_and_deletes_become_typed_records_with_lines() -> None:
    put, delete = await request_items(FIXTURES / "mixed-batch.json")
    assert isinstance(put, Record)
    assert isinstance(delete, Record)
    assert (put.typed, put.delete, put.table, put.line) == (True, False, TABLE, 3)
    assert put.value["PK"] == {"S": "PRODUCT#batch-headset-004"}
    assert put.value["price"] == {"N": "199"}
    assert (delete.typed, delete.delete, delete.table, delete.line) == (True, True, TABLE, 33)
    assert delete.value == {"PK": {"S": "PRODUCT#batch-mouse-002"}, "SK": {"S": "DETAILS"}}
    assert json.loads(delete.text) == {"DeleteRequest": {"Key": delete.value}}


async def test_request_items_large_batch_gives_all_thirty_puts_in_file_order() -> None:
    results = await request_items(FIXTURES / "large-batch.json")
    assert len(results) == 30
    assert all(isinstance(r, Record) and not r.delete for r in results)
    assert [r.value["PK"]["S"] for r in records(results)] == [
        f"PRODUCT#batch-test-{i}" for i in range(1, 31)
    ]
    lines = lines_of(results)
    assert lines[0] == 3
    assert lines == sorted(set(lines))


async def test_request_items_line_numbers_point_at_each_request(tmp_path: Path) -> None:
    path = tmp_path / "req.json"
    path.write_text(
        "{\n"
        '  "t1": [\n'
        '    {"PutRequest": {"Item": {"id": {"S": "a"}}}},\n'
        "\n"
        '    {"DeleteRequest": {"Key": {"id": {"S": "b"}}}}\n'
        "  ],\n"
        '  "t2": [{"PutRequest": {"Item": {"id": {"N": "1"}}}}]\n'
        "}\n"
    )
    results = records(await request_items(path))
    assert [(r.line, r.table, r.delete) for r in results] == [
        (3, "t1", False),
        (5, "t1", True),
        (7, "t2", False),
    ]


async def test_request_items_a_non_request_entry_is_rejected_and_the_rest_survive(
    tmp_path: Path,
) -> None:
    path = tmp_path / "req.json"
    path.write_text(
        '{"t": [\n'
        '  {"PutRequest": {"Item": {"id": {"S": "a"}}}},\n'
        '  {"UpdateRequest": {"Key": {"id": {"S": "b"}}}},\n'
        '  {"PutRequest": {"Key": {"id": {"S": "c"}}}},\n'
        '  {"DeleteRequest": {"Key": {"id": {"S": "d"}}}}\n'
        "]}\n"
    )
    results = await request_items(path)
    assert lines_of(results) == [2, 3, 4, 5]
    assert [type(r).__name__ for r in results] == ["Record", "Reject", "Reject", "Record"]
    assert isinstance(results[1], Reject)
    assert "each request must be a PutRequest or a DeleteRequest" in results[1].reason
    assert isinstance(results[2], Reject)
    assert "PutRequest needs an Item" in results[2].reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file ends early"),
        ('{"t": [{"PutRequest": {"Item": {}}}', "the file ends early"),
        ('["t"]', "expected '{'"),
        ('{"t": {"Keys": []}}', "expected '\\['"),
        ('{"t": [{"PutRequest": }]}', "is not a request-items file"),
    ],
)
async def test_a_file_that_is_not_a_request_file_is_a_source_error(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "req.json"
    path.write_text(text)
    with pytest.raises(SourceError, match=reason):
        await request_items(path)


async def test_a_batch_get_request_file_is_not_a_request_items_file() -> None:
    with pytest.raises(SourceError, match="is not a request-items file"):
        await request_items(FIXTURES / "batch-get.json")


async def test_request_items_gz_with_a_bom_reads_the_same_as_plain(tmp_path: Path) -> None:
    data = (FIXTURES / "mixed-batch.json").read_bytes()
    path = tmp_path / "req.json.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + data))
    assert await request_items(path) == await request_items(FIXTURES / "mixed-batch.json")


async def test_request_items_the_text_of_a_request_keeps_its_numbers(tmp_path: Path) -> None:
    request = '{"PutRequest": {"Item": {"id": {"S": "a"}, "n": {"N": 5}}}}'
    path = tmp_path / "req.json"
    path.write_text('{"t": [' + request + "]}")
    (record,) = await request_items(path)
    text = record.record if isinstance(record, Reject) else record.text
    assert text == request  # the original text, not a re-serialisation
    assert json.loads(text) == {"PutRequest": {"Item": {"id": {"S": "a"}, "n": {"N": 5}}}}


# --- DynamoDB JSON lines -------------------------------------------------------------------

DDB_JSON = (
    '{"PK": {"S": "a"}, "n": {"N": "1.50"}}\n'
    "\n"
    '{"Item": {"PK": {"S": "b"}}}\n'
    '{"PutRequest": {"Item": {"PK": {"S": "c"}}}}\n'
    '{"DeleteRequest": {"Key": {"PK": {"S": "d"}}}}\n'
    "{broken\n"
    '{"DeleteRequest": {"Item": {"PK": {"S": "e"}}}}\n'
)


async def test_ddb_json_reads_items_export_lines_and_requests(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text(DDB_JSON)
    results = await read_all(read_ddb_json(str(path), "in", {}))
    assert lines_of(results) == [1, 3, 4, 5, 6, 7]
    a, b, c, d, broken, wrong = results
    assert a == Record(
        "in",
        1,
        {"PK": {"S": "a"}, "n": {"N": "1.50"}},
        b'{"PK": {"S": "a"}, "n": {"N": "1.50"}}',
        typed=True,
    )
    assert b == Record("in", 3, {"PK": {"S": "b"}}, b'{"Item": {"PK": {"S": "b"}}}', typed=True)
    assert isinstance(c, Record)
    assert (c.value, c.typed, c.delete) == ({"PK": {"S": "c"}}, True, False)
    assert isinstance(d, Record)
    assert (d.value, d.typed, d.delete) == ({"PK": {"S": "d"}}, True, True)
    assert isinstance(broken, Reject)
    assert "malformed JSON" in broken.reason
    assert broken.record == b"{broken"
    assert isinstance(wrong, Reject)
    assert "DeleteRequest needs a Key" in wrong.reason


async def test_ddb_json_gz_reads_the_same_as_plain(tmp_path: Path, chunking: int) -> None:
    plain = tmp_path / "items.json"
    plain.write_text(DDB_JSON)
    packed = tmp_path / "items.json.gz"
    packed.write_bytes(gzip.compress(DDB_JSON.encode()))
    assert await read_all(read_ddb_json(str(packed), "in", {})) == await read_all(
        read_ddb_json(str(plain), "in", {})
    )


def make_export(tmp_path: Path) -> Path:
    """A DynamoDB S3 export folder: manifests, checksums, a marker and data files."""
    root = tmp_path / "AWSDynamoDB" / "01234-abcd"
    data = root / "data"
    data.mkdir(parents=True)
    (root / "manifest-summary.json").write_text('{"itemCount": 3}\n')
    (root / "manifest-files.json").write_text('{"dataFileS3Key": "x"}\n')
    (root / "manifest-summary.md5").write_text("abc\n")
    (tmp_path / "AWSDynamoDB" / "_started").write_text("")
    (data / "zz.json.gz").write_bytes(gzip.compress(b'{"Item": {"PK": {"S": "z"}}}\n'))
    (data / "aa.json.gz").write_bytes(
        gzip.compress(b'{"Item": {"PK": {"S": "a1"}}}\n{"Item": {"PK": {"S": "a2"}}}\n')
    )
    (data / "mm.json").write_text('{"Item": {"PK": {"S": "m"}}}\n')
    return tmp_path / "AWSDynamoDB"


def test_expand_lists_an_export_folders_data_files_sorted_without_manifests(
    tmp_path: Path,
) -> None:
    folder = make_export(tmp_path)
    data = folder / "01234-abcd" / "data"
    assert expand(str(folder)) == [
        str(data / "aa.json.gz"),
        str(data / "mm.json"),
        str(data / "zz.json.gz"),
    ]


def test_expand_leaves_a_file_and_stdin_alone(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text("")
    assert expand(str(path)) == [str(path)]
    assert expand("-") == ["-"]


async def test_ddb_json_reads_an_export_folder_file_by_file(tmp_path: Path) -> None:
    folder = make_export(tmp_path)
    data = folder / "01234-abcd" / "data"
    results = records(await read_all(read_ddb_json(str(folder), "export", {})))
    assert [(r.source, r.line, r.value["PK"]["S"]) for r in results] == [
        (str(data / "aa.json.gz"), 1, "a1"),
        (str(data / "aa.json.gz"), 2, "a2"),
        (str(data / "mm.json"), 1, "m"),
        (str(data / "zz.json.gz"), 1, "z"),
    ]


async def test_open_source_dispatches_on_format(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "large-batch.json", tmp_path / "req.json")
    path = str(tmp_path / "req.json")
    results = await read_all(open_source(path, detect_format(path), csv_types={}))
    assert len(results) == 30
    assert all(isinstance(r, Record) and r.table == TABLE for r in results)


async def test_a_line_nested_past_the_parser_limit_is_a_reject_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    deep = '{"PK": "p2", "m": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
    path = tmp_path / "in.jsonl"
    path.write_text(f'{{"PK": "p1"}}\n{deep}\n{{"PK": "p3"}}\n', encoding="utf-8")
    records = await read_all(read_jsonl(str(path), "in", {}))
    assert [type(r) for r in records] == [Record, Reject, Record]
    assert isinstance(records[1], Reject)
    assert "nested too deep" in records[1].reason
    assert records[1].line == 2


# --------------------------------------------------------------------------- the registry


async def test_a_new_format_is_one_registry_entry_and_auto_detection_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loader import sources
    from loader.sources import FORMATS, Format, format_of

    async def read_tsv(path: str, name: str, _types: Mapping[str, str]) -> AsyncIterator[Chunk]:
        yield [Record(name, 1, {"id": "a"}, b"a")], 1

    monkeypatch.setitem(FORMATS, "tsv", Format("tsv", read_tsv, suffixes=(".tsv",)))
    path = tmp_path / "x.tsv.gz"
    path.write_bytes(b"")
    assert detect_format(str(path)) == "tsv"
    assert format_of("tsv").read is read_tsv
    (record,) = await read_all(sources.open_source(str(path), "tsv", csv_types={}))
    assert isinstance(record, Record)
    assert record.value == {"id": "a"}


def test_an_unknown_format_is_one_sentence_naming_the_known_ones() -> None:
    from loader.sources import format_of

    with pytest.raises(ConfigError, match=r"^Unknown --format 'xml': use one of auto, jsonl, csv"):
        format_of("xml")
