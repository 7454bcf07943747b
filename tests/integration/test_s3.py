"""s3:// sources, through moto's S3 server, into DynamoDB Local, read back: objects,
gzip and zstd, prefixes as one input, DynamoDB exports by their manifests (and partial
ones refused), Parquet by ranged GETs, and --resume across objects."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from moto.server import ThreadedMotoServer

import ddb_loader
from tests.conftest import TableFactory, assert_table_equals, load_into, run_cli, stored
from tests.ddb_local import DynamoDBLocal, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


_buckets = iter(range(1, 10_000))


@pytest.fixture
def bucket(s3_url: str) -> Any:
    s3 = boto3.resource("s3", endpoint_url=s3_url, region_name="us-east-1")
    made = s3.create_bucket(Bucket=f"catalog-{next(_buckets)}")
    return made


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def products(start: int, count: int) -> list[dict[str, Any]]:
    return [{"PK": f"p#{i}", "SK": "v1", "price": f"{i}.5"} for i in range(start, start + count)]


def as_table(items: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(item["PK"], item["SK"]): item for item in items}


def load(table: str, ddb: DynamoDBLocal, s3_url: str, *args: str, status: int = 0) -> Any:
    return load_into(table, ddb.url, *args, "--s3-endpoint-url", s3_url, check_status=status)


def test_objects_gzip_and_zstd_load_as_files_do(
    ddb_local: DynamoDBLocal, make_table: TableFactory, s3_url: str, bucket: Any
) -> None:
    bucket.put_object(Key="a.jsonl", Body=jsonl(products(0, 300)))
    bucket.put_object(Key="b.jsonl.gz", Body=gzip.compress(jsonl(products(300, 300))))
    zstd = zstandard.ZstdCompressor().compress(jsonl(products(600, 300)))
    bucket.put_object(Key="c.jsonl.zst", Body=zstd)
    table = make_table()
    urls = [f"s3://{bucket.name}/{k}" for k in ("a.jsonl", "b.jsonl.gz", "c.jsonl.zst")]
    load(table, ddb_local, s3_url, *urls)
    assert_table_equals(stored(ddb_local.url, table), as_table(products(0, 900)))


def test_a_prefix_is_its_objects_in_key_order_as_one_input(
    ddb_local: DynamoDBLocal, make_table: TableFactory, s3_url: str, bucket: Any, tmp_path: Path
) -> None:
    # The same key in two objects: the later object, by key, wins.
    bucket.put_object(Key="dump/part-2.jsonl", Body=jsonl([{"PK": "k", "SK": "v1", "n": 2}]))
    bucket.put_object(Key="dump/part-1.jsonl", Body=jsonl([{"PK": "k", "SK": "v1", "n": 1}]))
    bucket.put_object(Key="dump/part-3.jsonl", Body=b'{"PK": "k2"}\n')  # no SK: a reject
    bucket.put_object(Key="dump/_SUCCESS", Body=b"")
    bucket.put_object(Key="other/x.jsonl", Body=jsonl(products(0, 5)))
    table = make_table()
    rejects = tmp_path / "rejects.jsonl"
    load(table, ddb_local, s3_url, f"s3://{bucket.name}/dump/", "--rejects", str(rejects), status=1)
    assert stored(ddb_local.url, table) == {("k", "v1"): {"PK": "k", "SK": "v1", "n": 2}}
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (reject["source"], reject["line"]) == (f"s3://{bucket.name}/dump/part-3.jsonl", 1)


def export(bucket: Any, items: list[dict[str, Any]], *, files: int = 2) -> str:
    """A DynamoDB export's layout, as DynamoDB writes it (manifest-summary.json last)."""
    base = "exports/AWSDynamoDB/01700000000000-abcd1234/"
    entries = []
    share = len(items) // files
    for n in range(files):
        part = items[n * share : (n + 1) * share if n < files - 1 else len(items)]
        lines = b"".join(
            json.dumps({"Item": {k: {"S": v} for k, v in item.items()}}).encode() + b"\n"
            for item in part
        )
        key = f"{base}data/file{n}.json.gz"
        bucket.put_object(Key=key, Body=gzip.compress(lines))
        entries.append({"itemCount": len(part), "dataFileS3Key": key, "etag": "x"})
    files_key = f"{base}manifest-files.json"
    bucket.put_object(Key=files_key, Body=b"".join(json.dumps(e).encode() + b"\n" for e in entries))
    summary = {
        "version": "2020-06-30",
        "itemCount": len(items),
        "outputFormat": "DYNAMODB_JSON",
        "manifestFilesS3Key": files_key,
    }
    bucket.put_object(Key=f"{base}manifest-summary.json", Body=json.dumps(summary).encode())
    return base


def test_a_dynamodb_export_loads_the_data_files_its_manifest_names(
    ddb_local: DynamoDBLocal, make_table: TableFactory, s3_url: str, bucket: Any
) -> None:
    items = [{"PK": f"p#{i}", "SK": "v1", "name": f"n{i}"} for i in range(500)]
    base = export(bucket, items, files=3)
    # A stray file beside the data: not in the manifest, so not loaded.
    bucket.put_object(Key=f"{base}data/stray.json.gz", Body=gzip.compress(b'{"Item": {}}\n'))
    table = make_table()
    load(table, ddb_local, s3_url, f"s3://{bucket.name}/exports/", "--format", "ddb-json")
    assert_table_equals(stored(ddb_local.url, table), as_table(items))


@pytest.mark.parametrize("broken", ["no summary", "a data file missing", "counts differ"])
def test_a_partial_export_is_refused_with_one_sentence_before_any_write(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    s3_url: str,
    bucket: Any,
    broken: str,
) -> None:
    items = [{"PK": f"p#{i}", "SK": "v1"} for i in range(100)]
    base = export(bucket, items)
    if broken == "no summary":
        bucket.Object(f"{base}manifest-summary.json").delete()
    elif broken == "a data file missing":
        bucket.Object(f"{base}data/file1.json.gz").delete()
    else:
        summary = {"itemCount": 99, "manifestFilesS3Key": f"{base}manifest-files.json"}
        bucket.put_object(Key=f"{base}manifest-summary.json", Body=json.dumps(summary).encode())
    table = make_table()
    result = load(table, ddb_local, s3_url, f"s3://{bucket.name}/{base}", status=2)
    assert "DynamoDB export" in result.stderr
    assert "Traceback" not in result.stderr
    assert stored(ddb_local.url, table) == {}


def test_parquet_is_read_from_s3_by_ranged_gets(
    ddb_local: DynamoDBLocal, make_table: TableFactory, s3_url: str, bucket: Any
) -> None:
    rows = pa.table({"PK": [f"p#{i}" for i in range(3000)], "SK": ["v1"] * 3000, "n": range(3000)})
    body = io.BytesIO()
    pq.write_table(rows, body, row_group_size=1000)
    bucket.put_object(Key="lake/catalog.parquet", Body=body.getvalue())
    table = make_table()
    load(table, ddb_local, s3_url, f"s3://{bucket.name}/lake/catalog.parquet")
    assert_table_equals(stored(ddb_local.url, table), as_table(rows.to_pylist()))


def test_resume_goes_on_across_objects_and_refuses_a_changed_one(
    ddb_local: DynamoDBLocal, make_table: TableFactory, s3_url: str, bucket: Any, tmp_path: Path
) -> None:
    bucket.put_object(Key="r/1.jsonl", Body=jsonl(products(0, 200)))
    bucket.put_object(Key="r/2.jsonl", Body=jsonl(products(200, 200)))
    table = make_table()
    checkpoint = tmp_path / "load.ckpt"
    source = f"s3://{bucket.name}/r/"
    load(table, ddb_local, s3_url, source, "--checkpoint", str(checkpoint))
    # As if the job had stopped 50 records into the second object, with nothing past
    # them written: --resume writes those, and only those.
    state = json.loads(checkpoint.read_text())
    assert [s["path"] for s in state["sources"]] == [f"{source}1.jsonl", f"{source}2.jsonl"]
    checkpoint.write_text(json.dumps({**state, "records_done": 250}))
    other = make_table()
    report = tmp_path / "report.json"
    load(other, ddb_local, s3_url, source, "--checkpoint", str(checkpoint), "--resume",
         "--report", str(report))  # fmt: skip
    assert_table_equals(stored(ddb_local.url, other), as_table(products(250, 150)))
    assert json.loads(report.read_text())["skipped_on_resume"] == 250
    # The second object replaced (a new ETag): the checkpoint is not its.
    bucket.put_object(Key="r/2.jsonl", Body=jsonl(products(200, 201)))
    result = load(other, ddb_local, s3_url, source, "--checkpoint", str(checkpoint), "--resume",
                  status=2)  # fmt: skip
    assert "belongs to other input" in result.stderr


def test_a_missing_object_or_bucket_is_one_sentence(
    ddb_local: DynamoDBLocal, make_table: TableFactory, s3_url: str, bucket: Any
) -> None:
    table = make_table()
    for url in (f"s3://{bucket.name}/nothing-here.jsonl", "s3://no-such-bucket/x.jsonl"):
        result = run_cli(
            "load", url, "--table", table, "--endpoint-url", ddb_local.url,
            "--s3-endpoint-url", s3_url, "--no-progress",
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_lines_split_across_ranges_are_joined_whole(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    s3_url: str,
    bucket: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loader.sources import s3

    monkeypatch.setattr(s3, "RANGE_BYTES", 1000)  # ~60 ranges, most ending mid-line
    items = products(0, 1500)
    bucket.put_object(Key="big.jsonl.gz", Body=gzip.compress(jsonl(items)))
    bucket.put_object(Key="big.jsonl", Body=jsonl(items))
    for key in ("big.jsonl", "big.jsonl.gz"):
        table = make_table()
        report = ddb_loader.load(
            f"s3://{bucket.name}/{key}",
            table=table,
            endpoint_url=ddb_local.url,
            s3_endpoint_url=s3_url,
        )
        assert report.items_written == 1500
        assert_table_equals(stored(ddb_local.url, table), as_table(items))


def test_an_ion_export_in_s3_loads_by_its_manifest(
    ddb_local: DynamoDBLocal, make_table: TableFactory, s3_url: str, bucket: Any
) -> None:
    base = "ion/AWSDynamoDB/01700000000001-ef567890/"
    items = [{"PK": f"p#{i}", "SK": "v1", "n": i} for i in range(200)]
    key = f"{base}data/part0.ion.gz"
    text = "$ion_1_0 " + " ".join(
        f'{{Item:{{PK:"{item["PK"]}",SK:"v1",n:{item["n"]}}}}}' for item in items
    )
    bucket.put_object(Key=key, Body=gzip.compress(text.encode()))
    files = json.dumps({"itemCount": 200, "dataFileS3Key": key}).encode()
    bucket.put_object(Key=f"{base}manifest-files.json", Body=files)
    summary = {
        "itemCount": 200,
        "outputFormat": "ION",
        "manifestFilesS3Key": f"{base}manifest-files.json",
    }
    bucket.put_object(Key=f"{base}manifest-summary.json", Body=json.dumps(summary).encode())
    table = make_table()
    load(table, ddb_local, s3_url, f"s3://{bucket.name}/{base}")
    assert_table_equals(stored(ddb_local.url, table), as_table(items))


def test_with_two_writer_processes_each_object_is_read_once_and_last_write_wins(
    ddb_local: DynamoDBLocal, make_table: TableFactory, s3_url: str, bucket: Any
) -> None:
    first = products(0, 2000)
    later = [{**item, "price": "9.99"} for item in products(0, 1000)]  # the same keys again
    bucket.put_object(Key="p/1.jsonl", Body=jsonl(first))
    bucket.put_object(Key="p/2.jsonl.gz", Body=gzip.compress(jsonl(later)))
    table = make_table()
    load(table, ddb_local, s3_url, f"s3://{bucket.name}/p/", "--processes", "2")
    assert_table_equals(stored(ddb_local.url, table), as_table(first[1000:] + later))
