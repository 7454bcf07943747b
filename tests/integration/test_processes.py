"""How records reach the writers: with --processes, writer processes fed by one reader.
Every operation on a key goes through one process in input order, so the last write wins
however far apart the duplicates are; rejects, counts and checkpoints are merged. The
guarantees are a single process's: those tests run with one process and with two
(the `processes` fixture), like the fault and resume tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    TableFactory,
    load_into,
    processes_flag,
    records_done,
    running_loader,
    scan_table,
    wait_until,
)
from tests.ddb_local import DynamoDBLocal
from tests.faultproxy import FaultConfig, FaultProxy

pytestmark = pytest.mark.integration


def write_records(path: Path, count: int) -> dict[str, int]:
    """`count` records, where every tenth key comes back much later (and once right after)
    with a new value; returns each key's last value."""
    records = [{"PK": f"P#{i}", "SK": "S", "v": i} for i in range(count)]
    for i in range(0, count, 10):
        records.append({"PK": f"P#{i}", "SK": "S", "v": 1_000_000 + i})  # far apart
    for i in range(5, count, 50):
        records.insert(i + 1, {"PK": f"P#{i}", "SK": "S", "v": 2_000_000 + i})  # adjacent
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return {r["PK"]: r["v"] for r in records}


def test_rejects_from_the_reader_and_the_writers_are_all_counted_and_kept(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path, processes: int
) -> None:
    table = make_table(gsi=False)
    lines = [json.dumps({"PK": f"P#{i}", "SK": "S"}) for i in range(3000)]
    lines[0] = "[1, 2]"  # the main process rejects the first record (and no writer again)
    lines[100] = '{"PK": "broken'  # the writer's parser rejects it
    lines[2000] = json.dumps({"SK": "no partition key"})  # the writer's codec rejects it
    lines[1000:1000] = ["", "  "]  # blank lines are not records, but they have numbers
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    rejects, report = tmp_path / "rejects.jsonl", tmp_path / "report.json"

    result = load_into(
        table,
        ddb_local.url,
        str(source),
        *processes_flag(processes),
        "--rejects",
        str(rejects),
        "--report",
        str(report),
        "--no-progress",
    )

    assert result.returncode == 1, result.stderr
    rejected = sorted(json.loads(x)["line"] for x in rejects.read_text().splitlines())
    assert rejected == [1, 101, 2003]
    numbers = json.loads(report.read_text())
    assert numbers["items_written"] == 2997
    assert numbers["rejected"] == 3
    assert numbers["records_read"] == 3000
    assert len(scan_table(ddb_local.url, table)) == 2997


@pytest.mark.timeout(240)
def test_a_stopped_load_resumes_to_exactly_the_input(
    ddb_local: DynamoDBLocal,
    proxy: FaultProxy,
    make_table: TableFactory,
    tmp_path: Path,
    processes: int,
) -> None:
    table = make_table(gsi=False)
    source = tmp_path / "in.jsonl"
    last = write_records(source, 8_000)
    checkpoint = tmp_path / "load.ckpt"
    proxy.config = FaultConfig(latency_s=0.2)  # ~1,000 items/s: the load lasts seconds
    with running_loader(
        "load", str(source), "--table", table, "--endpoint-url", proxy.url,
        *processes_flag(processes), "--workers", "4", "--checkpoint", str(checkpoint),
        "--no-progress",
    ) as process:  # fmt: skip
        wait_until(lambda: records_done(checkpoint) > 0, process)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    assert "outcome          aborted: interrupted" in out  # the summary, merged
    done = json.loads(checkpoint.read_text())["records_done"]
    assert 0 < done < len(source.read_text().splitlines())

    proxy.config = FaultConfig()
    resumed = load_into(
        table,
        proxy.url,
        str(source),
        *processes_flag(processes),
        "--checkpoint",
        str(checkpoint),
        "--resume",
        "--no-progress",
        check_status=0,
    )
    assert f"skipped (resume) {done:,}" in resumed.stdout
    stored = {item["PK"]["S"]: int(item["v"]["N"]) for item in scan_table(ddb_local.url, table)}
    assert stored == last


@pytest.mark.parametrize("value", ["a", "é€😀", "", "x" * 300, 5, 10, "1.0"])
def test_the_key_peek_routes_a_line_as_its_parsed_record_is_routed(value: object) -> None:
    from loader.codec import KeySchema, parse_json
    from loader.parallel import KeyPeek, route
    from loader.sources import Record

    raw = json.dumps({"PK": value, "other": [1, {"PK": "not this"}]}).encode()
    schemas = {"bench": KeySchema("bench", "PK", "S")}
    record = Record("f", 1, parse_json(raw), raw)
    for n in (2, 3, 7):
        assert KeyPeek("bench", "PK", n).shard(raw) == route(record, "bench", schemas, n)


@pytest.mark.timeout(120)
def test_max_wcu_is_the_whole_job_s_ceiling_however_many_processes(
    proxy: FaultProxy, make_table: TableFactory, tmp_path: Path
) -> None:
    # Each writer process paces its own share (max-wcu / processes): two processes
    # each at the full --max-wcu sent twice the ceiling.
    table = make_table(gsi=False)
    source = tmp_path / "in.jsonl"
    write_records(source, 2_500)  # 2,800 items of 1 WCU: ~9 s at 300 WCU/s
    proxy.config = FaultConfig()
    proxy.reset_stats()

    load_into(table, proxy.url, str(source), "--processes", "2", "--max-wcu", "300")

    # Whole seconds from the third with writes on (each writer starts with a second's
    # burst, which the first two may hold; start-up time varies), without the last,
    # partial one.
    per_second = [wcu for _, wcu in proxy.stats().admitted_per_second]
    first = next(i for i, wcu in enumerate(per_second) if wcu)
    seconds = per_second[first + 2 : -1]
    assert len(seconds) >= 5, per_second
    mean = sum(seconds) / len(seconds)
    assert 270 <= mean <= 330, f"mean {mean:.0f} WCU/s over {seconds} (all: {per_second})"


@pytest.mark.timeout(120)
def test_a_writer_with_no_keys_to_write_leaves_its_share_of_max_wcu_to_the_other(
    proxy: FaultProxy, make_table: TableFactory, tmp_path: Path
) -> None:
    # Split once at the start (max-wcu / processes), the writer with every key would
    # send at 150 WCU/s while the other, done, held the rest; shared through the main
    # process's lease service, the whole 300 is the busy writer's.
    from loader.codec import KeySchema
    from loader.parallel import route
    from loader.sources import Record

    table = make_table(gsi=False)
    schemas = {table: KeySchema(table, "PK", "S")}
    records = [{"PK": f"P#{i}", "SK": "S", "v": i} for i in range(4_000)]
    first_writers = [r for r in records if route(Record("f", 1, r, b""), table, schemas, 2) == 0][
        :2_100
    ]  # ~7 s at 300 WCU/s
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in first_writers))
    proxy.config = FaultConfig()
    proxy.reset_stats()

    load_into(table, proxy.url, str(source), "--processes", "2", "--max-wcu", "300")

    assert {(item["PK"]["S"], int(item["v"]["N"])) for item in scan_table(proxy.url, table)} == {
        (r["PK"], r["v"]) for r in first_writers
    }
    per_second = [wcu for _, wcu in proxy.stats().admitted_per_second]
    first = next(i for i, wcu in enumerate(per_second) if wcu)
    seconds = per_second[first + 2 : -1]
    assert len(seconds) >= 3, per_second
    assert sum(seconds) / len(seconds) >= 220, per_second
    assert max(per_second) <= 330, per_second


@pytest.mark.parametrize("how", ["jsonl file", "jsonl on stdin"])
def test_the_first_record_that_parses_is_checked_before_any_write(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path, how: str, processes: int
) -> None:
    # As in one process: lines that do not parse are rejected, and the first record that
    # does is checked; a key the records do not carry stops the job before any write.
    table = make_table(gsi=False)
    source = tmp_path / "in.jsonl"
    source.write_text(
        "# exported 2026-11-27\n" + "".join(f'{{"id": "P#{i}"}}\n' for i in range(2_000))
    )
    rejects = tmp_path / "rejects.jsonl"
    args = ["--table", table, "--endpoint-url", ddb_local.url, *processes_flag(processes)]
    args += ["--rejects", str(rejects)]
    stdin = None
    if how == "jsonl on stdin":
        args += ["-", "--format", "jsonl"]
        stdin = source.read_text()
    else:
        args += [str(source)]

    result = subprocess.run(
        [sys.executable, "-m", "loader", "load", *args, "--no-progress"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stderr
    assert "does not carry the key" in result.stderr
    assert result.stderr.count("\n") == 1
    assert scan_table(ddb_local.url, table) == []
    assert [json.loads(row)["line"] for row in rejects.read_text().splitlines()] == [1]


def test_max_rejects_reached_on_the_first_lines_still_reports(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path, processes: int
) -> None:
    table = make_table(gsi=False)
    source = tmp_path / "in.jsonl"
    source.write_text('{"PK": \n' + "".join(f'{{"PK": "P#{i}", "SK": "S"}}\n' for i in range(99)))
    rejects, report = tmp_path / "rejects.jsonl", tmp_path / "report.json"
    checkpoint = tmp_path / "load.ckpt"
    args = [*processes_flag(processes), "--max-rejects", "0", "--checkpoint", str(checkpoint)]

    result = load_into(
        table, ddb_local.url, str(source), *args, "--rejects", str(rejects),
        "--report", str(report),
    )  # fmt: skip

    assert result.returncode == 3, result.stderr
    assert "aborted: more than 0 records rejected (--max-rejects)" in result.stdout
    numbers = json.loads(report.read_text())
    assert numbers["rejected"] == numbers["records_read"] == 1
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == [1]
    # The checkpoint passes the rejected line, so a resume goes on past it.
    assert json.loads(checkpoint.read_text())["records_done"] == 1
    load_into(table, ddb_local.url, str(source), *args, "--resume", check_status=0)
    assert len(scan_table(ddb_local.url, table)) == 99
