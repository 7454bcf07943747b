"""Shared fixtures: one DynamoDB Local for the session, a fresh table per test,
and dummy credentials (DynamoDB Local and moto accept any)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from hypothesis import settings

from tests.ddb_local import DynamoDBLocal, find_jar

os.environ.update(
    AWS_ACCESS_KEY_ID="test",
    AWS_SECRET_ACCESS_KEY="test",
    AWS_DEFAULT_REGION="us-east-1",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
# The tests' servers are on loopback: a developer's own proxy must not carry them.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "AWS_CA_BUNDLE"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.lower(), None)

# The same generated examples on every run: CI passes or fails on the code, not on the
# draw (hypothesis still shrinks a failure to its smallest case), and writes no database.
settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.load_profile("repeatable")

_names = itertools.count(1)


@pytest.fixture(scope="session")
def ddb_local() -> Iterator[DynamoDBLocal]:
    jar = find_jar()
    if jar is None:
        pytest.fail("DynamoDB Local is not installed: run `make ddb-local` (make test does).")
    with DynamoDBLocal(jar) as server:
        yield server


def sync_client(url: str) -> Any:
    """A plain boto3 client for set-up and read-back, independent of the loader's code."""
    return boto3.client(
        "dynamodb", endpoint_url=url, config=Config(retries={"total_max_attempts": 5})
    )


TableFactory = Callable[..., str]
_deserialize = TypeDeserializer().deserialize


def create_table(
    url: str,
    *,
    keys: tuple[tuple[str, str], ...] = (("PK", "S"), ("SK", "S")),
    gsi: bool = True,
    name: str | None = None,
) -> str:
    """Create an on-demand table (by default the tutorial's PK/SK strings with GSI1) with
    boto3 directly; returns its name, a fresh one unless given."""
    name = name or f"t{next(_names)}-{os.getpid()}"
    schema = [{"AttributeName": keys[0][0], "KeyType": "HASH"}]
    if len(keys) > 1:
        schema.append({"AttributeName": keys[1][0], "KeyType": "RANGE"})
    attributes = [{"AttributeName": n, "AttributeType": t} for n, t in keys]
    extra: dict[str, Any] = {}
    if gsi:
        attributes += [{"AttributeName": n, "AttributeType": "S"} for n in ("GSI1PK", "GSI1SK")]
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "GSI1",
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    sync_client(url).create_table(
        TableName=name,
        KeySchema=schema,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    return name


@pytest.fixture
def make_table(ddb_local: DynamoDBLocal) -> TableFactory:
    """Create a fresh on-demand table on the session's DynamoDB Local (see create_table)."""

    def create(
        keys: tuple[tuple[str, str], ...] = (("PK", "S"), ("SK", "S")),
        gsi: bool = True,
        url: str | None = None,
    ) -> str:
        return create_table(url or ddb_local.url, keys=keys, gsi=gsi)

    return create


def scan_table(url: str, table: str) -> list[dict[str, Any]]:
    """Every item of `table`, in DynamoDB JSON, read with boto3 directly."""
    client = sync_client(url)
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return items


Key = tuple[Any, ...]


def stored(url: str, table: str) -> dict[Key, dict[str, Any]]:
    """The PK/SK table, read directly from DynamoDB Local, as plain values by key."""
    items = [{k: _deserialize(v) for k, v in item.items()} for item in scan_table(url, table)]
    return {(item["PK"], item["SK"]): item for item in items}


def assert_table_equals(actual: dict[Key, Any], expected: dict[Key, Any]) -> None:
    """Contents, not counts: no item lost, none extra, each one equal."""
    extra = actual.keys() - expected.keys()
    assert_table_holds(actual, expected)
    assert not extra, f"{len(extra)} unexpected items, e.g. {sorted(extra)[:5]}"


def assert_table_holds(actual: dict[Key, Any], expected: dict[Key, Any]) -> None:
    """Every expected item is stored, equal; the table may hold more (say, records past
    a checkpoint, which a stopped load may or may not have written)."""
    missing = expected.keys() - actual.keys()
    assert not missing, f"{len(missing)} items lost, e.g. {sorted(missing)[:5]}"
    wrong = [k for k, v in expected.items() if actual[k] != v]
    assert not wrong, (
        f"{len(wrong)} items differ, e.g. {wrong[0]}: "
        f"stored {actual[wrong[0]]} expected {expected[wrong[0]]}"
    )


# Every guarantee holds however many writer processes a load runs in, so the tests that
# prove one run with one process and with two, rather than comparing the two. Module
# scope: a module's fixture that runs one load for several tests can take it too.
@pytest.fixture(scope="module", params=[1, 2], ids=["1-process", "2-processes"])
def processes(request: pytest.FixtureRequest) -> int:
    """The number of writer processes (--processes) a test's loads run in."""
    count: int = request.param
    return count


def processes_flag(count: int) -> tuple[str, str]:
    """`--processes COUNT` for a CLI load. Given even for 1, which is also the default for
    inputs under 64 MB, so that no test depends on that threshold."""
    return ("--processes", str(count))


def run_cli(
    *args: str,
    check_status: int | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m loader ARGS` as a user would (with `stdin` as its standard input),
    in `cwd` (by default a new empty folder, where a default rejects file lands), and
    return what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "loader", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd or tempfile.mkdtemp(prefix="ddb-loader-cli-"),
    )
    if check_status is not None:
        assert result.returncode == check_status, result.stderr[-3000:]
    return result


def load_into(
    table: str, endpoint: str, *args: str, check_status: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`ddb-loader load ARGS --table TABLE --endpoint-url ENDPOINT --no-progress`."""
    return run_cli(
        "load",
        *args,
        "--table",
        table,
        "--endpoint-url",
        endpoint,
        "--no-progress",
        check_status=check_status,
    )


@contextlib.contextmanager
def running_loader(*args: str, **popen: Any) -> Iterator[subprocess.Popen[str]]:
    """`python -m loader ARGS` in the background, killed if still running and its pipes
    closed on every way out of the block, a failed assertion included."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    process = subprocess.Popen([sys.executable, "-m", "loader", *args], text=True, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        process.wait()


def wait_until(
    condition: Callable[[], bool], process: subprocess.Popen[str], *, limit_s: float = 120
) -> None:
    """Wait for an observable state of a running load, however busy the machine is;
    `limit_s` only bounds a load that makes no progress at all."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert process.poll() is None, "the load ended before the state it was waited for"
        assert time.monotonic() < deadline, f"no progress in {limit_s:.0f} s"
        time.sleep(0.02)


def records_done(checkpoint: Path) -> int:
    """How far a checkpoint says the input is finished (0 before the first one)."""
    try:
        return int(json.loads(checkpoint.read_text())["records_done"])
    except FileNotFoundError:
        return 0
