"""ddb_loader from Python: records a program holds go in with every guarantee of the
command line, read back from DynamoDB Local."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

import ddb_loader
from ddb_loader import ConfigError, Reject
from tests.conftest import TableFactory, create_table, scan_table, stored, sync_client
from tests.ddb_local import DynamoDBLocal
from tests.faultproxy import FaultConfig, FaultProxy

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


async def test_the_blocking_load_works_where_a_loop_runs_already_as_in_a_notebook(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)
    report = ddb_loader.load([product(1)], table=table, endpoint_url=ddb_local.url)
    assert report.items_written == 1
    assert stored(ddb_local.url, table) == {("p#1", "v1"): as_stored(product(1))}


def test_a_library_load_leaves_the_process_s_collector_alone(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    before = gc.get_threshold(), gc.get_freeze_count()
    ddb_loader.load([product(1)], table=make_table(gsi=False), endpoint_url=ddb_local.url)
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


# --- the writer: boto3's batch_writer in shape, that never drops a write ---


async def test_the_writer_writes_every_put_and_delete_before_its_exit_returns(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)
    async with ddb_loader.writer(table, endpoint_url=ddb_local.url) as w:
        for version in (1, 2):
            for i in range(1_500):
                await w.put(product(i, version=version))
        for i in range(0, 1_500, 3):
            await w.delete({"PK": f"p#{i}", "SK": "v1"})
        await w.put(product(0, version=3))  # after its delete: the put wins

    assert w.report is not None
    assert w.report.items_written + w.report.deletes_written == 3_501
    expected = {(f"p#{i}", "v1"): as_stored(product(i, version=2)) for i in range(1_500)}
    for i in range(0, 1_500, 3):
        del expected[(f"p#{i}", "v1")]
    expected[("p#0", "v1")] = as_stored(product(0, version=3))
    assert stored(ddb_local.url, table) == expected


async def test_a_trickle_of_puts_is_written_without_waiting_for_a_batch_to_fill(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)
    async with ddb_loader.writer(table, endpoint_url=ddb_local.url) as w:
        await w.put(product(1))
        for _ in range(200):  # up to 10 s
            if stored(ddb_local.url, table):
                break
            await asyncio.sleep(0.05)
        assert stored(ddb_local.url, table) == {("p#1", "v1"): as_stored(product(1))}


async def test_the_writer_s_exit_names_each_write_the_service_refused(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)

    async def write() -> None:
        async with ddb_loader.writer(table, endpoint_url=ddb_local.url) as w:
            for i in range(1, 101):
                await w.put(product(i, weight=1.5) if i in (7, 70) else product(i))

    with pytest.raises(ddb_loader.UnwrittenError) as raised:
        await write()

    assert [(r.line, "float" in r.reason) for r in raised.value.rejects] == [(7, True), (70, True)]
    assert raised.value.unwritten == []
    assert stored(ddb_local.url, table) == {
        (f"p#{i}", "v1"): as_stored(product(i)) for i in range(1, 101) if i not in (7, 70)
    }


async def test_what_was_put_before_the_body_raised_is_still_written(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)

    async def write() -> None:
        async with ddb_loader.writer(table, endpoint_url=ddb_local.url) as w:
            for i in range(300):
                await w.put(product(i))
            raise KeyError("the caller's own bug")

    with pytest.raises(KeyError):
        await write()
    assert stored(ddb_local.url, table) == {
        (f"p#{i}", "v1"): as_stored(product(i)) for i in range(300)
    }


async def test_a_writer_for_a_missing_table_fails_with_one_sentence(
    ddb_local: DynamoDBLocal,
) -> None:
    async def write() -> None:
        async with ddb_loader.writer("no-such-table", endpoint_url=ddb_local.url) as w:
            for i in range(10_000):  # the job's failure reaches a put, or else the exit
                await w.put(product(i))

    with pytest.raises(ConfigError, match="does not exist"):
        await write()


async def test_a_writer_whose_job_stops_gives_back_exactly_the_writes_not_made(
    ddb_local: DynamoDBLocal, make_table: TableFactory, proxy: FaultProxy
) -> None:
    # Half of every batch refused and no retries: the job stops early. Nothing may
    # vanish: each put is either in the table or handed back, never both.
    proxy.config = FaultConfig(refuse_fraction=0.5, seed=3)
    table = make_table(gsi=False)

    async def write() -> None:
        async with ddb_loader.writer(table, endpoint_url=proxy.url, max_retries=0) as w:
            for i in range(2_000):
                await w.put(product(i))

    with pytest.raises(ddb_loader.UnwrittenError) as raised:
        await write()

    unwritten = {(op["PK"], op["SK"]) for op in raised.value.unwritten}
    table_keys = set(stored(ddb_local.url, table))
    assert unwritten, "the job stopped, so some writes were not made"
    assert not unwritten & table_keys
    assert unwritten | table_keys == {(f"p#{i}", "v1") for i in range(2_000)}
    assert raised.value.report.outcome.stopped_early


def test_the_blocking_writer_for_scripts_keeps_the_same_promise(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)
    with ddb_loader.sync_writer(table, endpoint_url=ddb_local.url) as w:
        for i in range(500):
            w.put(product(i))
        w.delete({"PK": "p#0", "SK": "v1"})

    assert w.report is not None
    assert w.report.items_written == 500
    assert stored(ddb_local.url, table) == {
        (f"p#{i}", "v1"): as_stored(product(i)) for i in range(1, 500)
    }


def readme_examples() -> list[str]:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.mark.parametrize("example", readme_examples(), ids=["load", "writer"])
def test_the_readme_s_python_examples_run_as_written(
    ddb_local: DynamoDBLocal, tmp_path: Path, example: str
) -> None:
    # As a user runs them: a script of its own, the endpoint and region from the
    # environment (the examples name neither), and a table called "products".
    (tmp_path / "catalog.jsonl").write_text('{"PK": "PRODUCT#x", "SK": "DETAILS"}\n')
    (tmp_path / "example.py").write_text(example)
    env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": ddb_local.url, "AWS_REGION": "us-east-1"}
    table = create_table(ddb_local.url, gsi=False, name="products")
    try:
        result = subprocess.run(
            [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        keys = {item["PK"]["S"] for item in scan_table(ddb_local.url, table)}
    finally:
        sync_client(ddb_local.url).delete_table(TableName=table)
    if "writer" in example:
        assert result.stdout.split() == ["1000", "1"]
        assert keys == {f"PRODUCT#{i}" for i in range(1, 1_000)}
    else:
        assert result.stdout.startswith("10000 0 []")
        assert keys == {"PRODUCT#x"} | {f"PRODUCT#{i}" for i in range(10_000)}


# --- the writer when things go wrong: every put is written, refused or handed back ---


async def unwritten_after_putting(
    table: str, url: str, puts: list[dict[str, Any]], **options: Any
) -> ddb_loader.UnwrittenError:
    """Put every item through a writer; the UnwrittenError its exit must raise."""

    async def write() -> None:
        async with ddb_loader.writer(table, endpoint_url=url, **options) as w:
            for item in puts:
                await w.put(item)

    with pytest.raises(ddb_loader.UnwrittenError) as raised:
        await write()
    return raised.value


def assert_each_put_accounted_for(
    url: str, table: str, puts: list[dict[str, Any]], unwritten: list[Any], rejects: list[Reject]
) -> None:
    written = set(stored(url, table))
    handed_back = {(op["PK"], op["SK"]) for op in unwritten}
    refused = {(puts[r.line - 1]["PK"], puts[r.line - 1]["SK"]) for r in rejects}
    assert not written & handed_back, "handed back, yet written"
    assert not refused & handed_back, "handed back as refused and as not written"
    assert written | handed_back | refused == {(p["PK"], p["SK"]) for p in puts}


async def test_a_failing_reject_callback_loses_no_write_without_a_word(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)
    puts = [product(i, weight=1.5) if i == 5 else product(i) for i in range(1, 801)]

    def refuse(reject: Reject) -> None:
        raise ValueError("the caller's callback fails")

    error = await unwritten_after_putting(table, ddb_local.url, puts, on_reject=refuse)
    assert isinstance(error.__cause__, ValueError)  # the callback's failure, said
    assert [r.line for r in error.rejects] == [5]
    assert error.unwritten == []  # it stopped no write
    assert_each_put_accounted_for(ddb_local.url, table, puts, error.unwritten, error.rejects)


async def test_a_write_refused_at_the_max_rejects_limit_is_refused_not_also_unwritten(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)
    puts = [product(i, weight=1.5) if i == 3 else product(i) for i in range(1, 13)]

    error = await unwritten_after_putting(table, ddb_local.url, puts, max_rejects=0)
    assert [r.line for r in error.rejects] == [3]
    assert_each_put_accounted_for(ddb_local.url, table, puts, error.unwritten, error.rejects)


async def test_an_idle_writer_sends_what_it_holds_open(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    # 26 puts: a full batch and one more; then a key written twice. While the writer is
    # idle, neither the 26th nor the second write of the key waits for more puts.
    table = make_table(gsi=False)

    async def settled(expected: dict[Any, Any]) -> dict[Any, Any]:
        for _ in range(200):  # up to 10 s
            now = stored(ddb_local.url, table)
            if now == expected:
                break
            await asyncio.sleep(0.05)
        return now

    async with ddb_loader.writer(table, endpoint_url=ddb_local.url) as w:
        for i in range(26):
            await w.put(product(i))
        expected = {(f"p#{i}", "v1"): as_stored(product(i)) for i in range(26)}
        assert await settled(expected) == expected
        await w.put(product(0, version=1))
        await w.put(product(0, version=2))
        expected[("p#0", "v1")] = as_stored(product(0, version=2))
        assert await settled(expected) == expected


async def test_a_cancelled_writer_hands_back_exactly_the_writes_it_did_not_make(
    ddb_local: DynamoDBLocal, make_table: TableFactory, proxy: FaultProxy
) -> None:
    proxy.config = FaultConfig(refuse_fraction=0.5, seed=5)  # slow going: much in flight
    table = make_table(gsi=False)
    puts: list[dict[str, Any]] = []
    # A long stop grace: a busy machine must not cut the sends under way short (then what
    # they carried would count as unwritten, though DynamoDB may have taken it).
    writer = ddb_loader.writer(table, endpoint_url=proxy.url, stop_grace_s=60)

    async def write() -> None:
        async with writer as w:
            for i in range(3_000):
                await w.put(product(i))
                puts.append(product(i))  # a put that returned: held by the writer

    task = asyncio.create_task(write())
    while len(puts) < 1_500:  # noqa: ASYNC110  (the body's own list, polled)
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_each_put_accounted_for(ddb_local.url, table, puts, writer.unwritten, writer.rejects)


def test_a_record_source_that_fails_raises_its_own_error_and_one_dict_is_refused(
    ddb_local: DynamoDBLocal, make_table: TableFactory
) -> None:
    table = make_table(gsi=False)

    def failing() -> Iterator[dict[str, Any]]:
        yield product(1)
        raise KeyError("the caller's source fails")

    with pytest.raises(KeyError):
        ddb_loader.load(failing(), table=table, endpoint_url=ddb_local.url)
    with pytest.raises(ConfigError, match="not one dict"):
        ddb_loader.load(product(1), table=table, endpoint_url=ddb_local.url)  # type: ignore[arg-type]


SYNC_SCRIPT = """
import json, os, signal, sys, threading, time
import ddb_loader

# As a terminal's Ctrl-C finds it, even when this test runs in a background job (whose
# children inherit SIGINT ignored, and Python then installs no KeyboardInterrupt).
signal.signal(signal.SIGINT, signal.default_int_handler)
url, table = sys.argv[1], sys.argv[2]
done = []
w = ddb_loader.sync_writer(table, endpoint_url=url, stop_grace_s=60)  # a busy CI machine

def ctrl_c_twice():  # once in the puts, once while the exit waits for the writes
    while len(done) < 1500:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=ctrl_c_twice, daemon=True).start()
try:
    with w:
        for i in range(100_000):
            item = {"PK": f"p#{i}", "SK": "v1"}
            w.put(item)
            done.append(item)
except KeyboardInterrupt:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late one must not eat the output
    print(json.dumps({"put": done, "unwritten": w.unwritten}), flush=True)
"""


def test_ctrl_c_twice_on_a_blocking_writer_hands_back_exactly_the_writes_not_made(
    ddb_local: DynamoDBLocal, make_table: TableFactory, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.config = FaultConfig(refuse_fraction=0.5, seed=7)  # slow going: much in flight
    table = make_table(gsi=False)
    (tmp_path / "script.py").write_text(SYNC_SCRIPT)
    result = subprocess.run(
        [sys.executable, "script.py", proxy.url, table], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen["unwritten"], "two Ctrl-C's stopped the writes under way"
    # The put the first Ctrl-C interrupted may have been taken, or not: it is the one
    # whose fate the script cannot know, so it counts as put if it was.
    puts = seen["put"]
    interrupted = {"PK": f"p#{len(puts)}", "SK": "v1"}
    if ("p#" + str(len(puts)), "v1") in stored(ddb_local.url, table) or interrupted in seen[
        "unwritten"
    ]:
        puts = [*puts, interrupted]
    assert_each_put_accounted_for(ddb_local.url, table, puts, seen["unwritten"], [])
