"""Issue 3, "never lose a write": the loader against real faults.

Every load goes through `tests.faultproxy.FaultProxy` in front of DynamoDB Local,
and every check reads the table back *directly* from DynamoDB Local (never through
the proxy) and compares contents with expectations built here, independently of the
loader's codec (json with Decimal numbers, boto3's TypeDeserializer).

Sizes: items are ~260 bytes (1 WCU each) on a table without indexes, so the proxy's
WCU counters are item counts.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from loader import LoadConfig, load
from loader.errors import Outcome
from tests.conftest import (
    TableFactory,
    assert_table_equals,
    assert_table_holds,
    create_table,
    processes_flag,
    records_done,
    run_cli,
    stored,
)
from tests.ddb_local import DynamoDBLocal
from tests.faultproxy import FaultConfig, FaultProxy

pytestmark = pytest.mark.integration

Key = tuple[str, str]


# --------------------------------------------------------------------------- helpers


def record(i: int, **extra: Any) -> dict[str, Any]:
    """Input record number `i`: ~260 bytes, 1 WCU."""
    return {
        "PK": f"ITEM#{i:06d}",
        "SK": "A",
        "n": i,
        "price": f"{i % 997}.{i % 100:02d}",
        "name": f"item {i}",
        "pad": "x" * 200,
        **extra,
    }


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> list[str]:
    lines = [json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return lines


def expected_of(lines: list[str]) -> dict[Key, dict[str, Any]]:
    """What the table must hold: each key's last record, as plain values (Decimal numbers)."""
    out: dict[Key, dict[str, Any]] = {}
    for line in lines:
        value = json.loads(line, parse_float=Decimal, parse_int=Decimal)
        out[(value["PK"], value["SK"])] = value
    return out


def partition_of(pk: str, partitions: int) -> int:
    """The proxy's partition of a string partition key (tests/faultproxy.py: crc32 of the
    compact JSON of the key's AttributeValue, modulo the partition count)."""
    attribute = json.dumps({"S": pk}, separators=(",", ":")).encode()
    return zlib.crc32(attribute) % partitions


def steady(per_second: list[tuple[float, float]], skip_s: int) -> list[float]:
    """Admitted WCU of each whole second after the first `skip_s`, without the last
    (partial) second of the run."""
    return [wcu for second, wcu in per_second[:-1] if second >= skip_s]


class RecordingProxy(FaultProxy):
    """FaultProxy that also logs, per BatchWriteItem, when it arrived, how many items the
    budget admitted and refused, and when each partition key was first admitted."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.log: list[tuple[float, int, int]] = []
        self.admitted_at: dict[str, float] = {}

    def clear(self) -> None:
        self.log = []
        self.admitted_at = {}

    async def _apply_budget(self, op: str, body: bytes, headers: Any, cfg: FaultConfig) -> Any:
        outcome = await super()._apply_budget(op, body, headers, cfg)
        if op != "BatchWriteItem":
            return outcome
        now = time.monotonic()
        sent = sum(len(r) for r in json.loads(body).get("RequestItems", {}).values())
        if isinstance(outcome, web.Response):  # nothing admitted: throttled outright
            self.log.append((now, 0, sent))
            return outcome
        admitted_body, refused = outcome
        refused_n = sum(len(r) for r in refused.values())
        self.log.append((now, sent - refused_n, refused_n))
        for requests in json.loads(admitted_body).get("RequestItems", {}).values():
            for request in requests:
                pk = request["PutRequest"]["Item"]["PK"]["S"]
                self.admitted_at.setdefault(pk, now)
        return outcome


@pytest.fixture
def proxy(ddb_local: DynamoDBLocal) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(ddb_local.url)
    with recording:
        yield recording


def cli_load(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("load", *args, "--no-progress")


# --------------------------------------------------------------------------- 1. no loss


@pytest.mark.timeout(180)
def test_no_loss_exactly_once_outcome_under_every_fault(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    proxy: RecordingProxy,
    tmp_path: Path,
    processes: int,
) -> None:
    table = make_table(gsi=False)
    records = [record(i) for i in range(50_000)]
    # A transient hot spot: 2,000 records of one partition in a row, mid-input. They go
    # out in about a second, twice that partition's budget and burst: throttled, then
    # drained in ~3 s. (1,000 were not throttled at all on a busy machine, whose
    # loader sent them slower than the partition's burst and budget took them.)
    hot = [r for r in records if partition_of(r["PK"], 8) == 0][:2_000]
    hot_keys = {r["PK"] for r in hot}
    rest = [r for r in records if r["PK"] not in hot_keys]
    lines = write_jsonl(tmp_path / "in.jsonl", rest[:20_000] + hot + rest[20_000:])
    report = tmp_path / "report.json"
    proxy.config = FaultConfig(
        p_500_before=0.02,
        p_500_after=0.02,
        p_drop_before=0.02,
        p_drop_after=0.02,
        p_request_limit=0.02,
        p_unprocessed=0.05,
        # Budget throttling on top, in bursts: 8 partitions of 600 WCU/s under a 3,000
        # WCU/s table, the loader held at 2,500 WCU/s (~310 a partition), and the hot
        # spot above, which its partition drains in ~2 s. (Overload lasting longer than
        # the default retries' ~5-10 s would rightly give records up: 400 WCU/s
        # partitions did, 12 records in 1 of 4 runs.)
        table_wcu_per_s=3_000,
        partitions=8,
        partition_wcu_per_s=600,
        seed=1,
    )
    proxy.reset_stats()

    # --max-wcu pins the sending rate: this test is about loss, and takes ~35 s so.
    # (Adaptive, the same run took 12 minutes at 57997d5 and 86-108 s at 39705c4, the
    # budget never reached; rate control has its own tests below.)
    result = cli_load(
        str(tmp_path / "in.jsonl"),
        "--table",
        table,
        "--endpoint-url",
        proxy.url,
        "--report",
        str(report),
        "--max-wcu",
        "2500",
        *processes_flag(processes),
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert_table_equals(stored(ddb_local.url, table), expected_of(lines))
    numbers = json.loads(report.read_text())
    assert numbers["records_read"] == 50_000
    assert numbers["rejected"] == 0
    assert numbers["skipped_on_resume"] == 0
    assert numbers["items_written"] == 50_000
    assert (
        numbers["items_written"] + numbers["rejected"] + numbers["skipped_on_resume"]
        == numbers["records_read"]
    )
    assert numbers["errors_retried"] > 0
    assert numbers["unprocessed_retries"] > 0
    stats = proxy.stats()
    happened = {
        "500 before": stats.errors_500_before,
        "500 after": stats.errors_500_after,
        "drop before": stats.drops_before,
        "drop after": stats.drops_after,
        "RequestLimitExceeded": stats.request_limit,
        "random UnprocessedItems": stats.unprocessed_items,
        "budget-throttled items": stats.throttled_items,
    }
    print(f"no-loss run: {numbers}, proxy {happened}")
    assert all(count > 0 for count in happened.values()), happened


# --------------------------------------------------------------------------- 2. order


def repeated_input(base: int, seed: int) -> list[dict[str, Any]]:
    """`base` keys in order; 10% of them appear again later with new values: a third on
    the very next line, a third a few lines on, a third thousands of lines on; every
    tenth repeated key comes a third time."""
    rng = random.Random(seed)
    rows: list[tuple[float, dict[str, Any]]] = [
        (float(i), record(i, version=1)) for i in range(base)
    ]
    for n, i in enumerate(rng.sample(range(base), base // 10)):
        distance = (0.5, rng.uniform(1, 30), rng.uniform(2_000, base))[n % 3]
        rows.append((i + distance, record(i, version=2, name=f"item {i} v2")))
        if n % 10 == 0:
            rows.append((i + distance + 0.25, record(i, version=3, name=f"item {i} v3")))
    rows.sort(key=lambda row: row[0])
    return [r for _, r in rows]


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    """The records as CSV rows (their values have no commas or quotes to escape); loaded
    with --csv-type n=N --csv-type version=N they are the JSON records again."""
    columns = list(records[0]) + ["version"] * ("version" not in records[0])
    rows = [",".join(str(r.get(c, "")) for c in columns) for r in records]
    path.write_text(",".join(columns) + "\n" + "\n".join(rows) + "\n")


# The three ways records reach the writer processes (loader/parallel/): each writer reads
# a JSON-lines file itself and keeps its own keys; stdin goes through the main process as
# raw lines; other formats as parsed records. In one process, each is one reader.
@pytest.mark.parametrize("how", ["jsonl file", "jsonl on stdin", "csv"])
def test_last_write_wins_in_input_order_under_faults(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    proxy: RecordingProxy,
    tmp_path: Path,
    processes: int,
    how: str,
) -> None:
    table = make_table(gsi=False)
    records = repeated_input(8_000, seed=3)
    lines = write_jsonl(tmp_path / "in.jsonl", records)
    expected = expected_of(lines)
    assert sum(1 for v in expected.values() if v["version"] > 1) == 800
    stdin = None
    if how == "jsonl on stdin":
        source = ["-", "--format", "jsonl"]
        stdin = (tmp_path / "in.jsonl").read_text()
    elif how == "csv":
        write_csv(tmp_path / "in.csv", records)
        source = [str(tmp_path / "in.csv"), "--csv-type", "n=N", "--csv-type", "version=N"]
    else:
        source = [str(tmp_path / "in.jsonl")]
    report = tmp_path / "report.json"
    proxy.config = FaultConfig(p_unprocessed=0.3, p_500_after=0.1, p_drop_after=0.03, seed=3)
    proxy.reset_stats()

    result = run_cli(
        "load", *source, "--table", table, "--endpoint-url", proxy.url, "--workers", "32",
        *processes_flag(processes), "--report", str(report), "--no-progress",
        # A fixed ceiling, above what DynamoDB Local takes here: the adaptive limiter
        # collapses under this many random faults (see
        # test_adaptive_rate_is_not_collapsed_by_sporadic_faults).
        "--max-wcu", "5000",
        # Each send of an item fails 39% of the time here (refused, a 500, a dropped
        # answer): of 8,000 items, 0.25 a run are expected to fail 11 sends in a row,
        # which stops the job as it should (exit 3). This test is about the order.
        "--max-retries", "30",
        stdin=stdin,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert_table_equals(stored(ddb_local.url, table), expected)
    numbers = json.loads(report.read_text())
    assert numbers["rejected"] == 0
    assert numbers["records_read"] == len(records)
    assert numbers["items_written"] == len(records)
    stats = proxy.stats()
    assert stats.unprocessed_items > 0
    assert stats.errors_500_after > 0


# --------------------------------------------------------------------------- 3. backoff


def hot_and_cold(partitions: int, hot: int, cold: int) -> tuple[list[int], list[int]]:
    """Record numbers whose key lands in partition 0 (`hot` of them) and elsewhere."""
    hot_ids: list[int] = []
    cold_ids: list[int] = []
    i = 0
    while len(hot_ids) < hot or len(cold_ids) < cold:
        target = hot_ids if partition_of(record(i)["PK"], partitions) == 0 else cold_ids
        if len(target) < (hot if target is hot_ids else cold):
            target.append(i)
        i += 1
    return hot_ids, cold_ids


def test_throttling_reasons_are_counted_in_the_report_by_reason(
    ddb_local: DynamoDBLocal, make_table: TableFactory, proxy: RecordingProxy, tmp_path: Path
) -> None:
    # One item collection over its key range's budget: DynamoDB refuses its batches whole,
    # naming TableWriteKeyRangeThroughputExceeded (a batch's UnprocessedItems name none).
    hot = [{**record(i), "PK": "HOT", "SK": f"{i:06d}"} for i in range(150)]
    lines = write_jsonl(tmp_path / "in.jsonl", hot + [record(i) for i in range(150, 650)])
    table = make_table(gsi=False)
    proxy.config = FaultConfig(hot_key="HOT", key_wcu_per_s=60, throttling_reasons=True)
    proxy.reset_stats()
    report = tmp_path / "report.json"

    result = run_cli(
        "load", str(tmp_path / "in.jsonl"), "--table", table, "--endpoint-url", proxy.url,
        "--max-retries", "30", "--report", str(report), "--no-progress",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert_table_equals(stored(ddb_local.url, table), expected_of(lines))
    refused_whole = proxy.stats().throttled_requests
    assert refused_whole > 0
    numbers = json.loads(report.read_text())
    assert numbers["throttling_reasons"] == {"TableWriteKeyRangeThroughputExceeded": refused_whole}
    assert numbers["throttled_requests"] >= refused_whole
    assert f"TableWriteKeyRangeThroughputExceeded {refused_whole:,}" in result.stdout


def test_a_hot_partition_backs_off_while_other_keys_keep_flowing(
    ddb_local: DynamoDBLocal, make_table: TableFactory, proxy: RecordingProxy, tmp_path: Path
) -> None:
    # 32 partitions of 50 WCU/s; 20 hot batches for 16 workers, so every worker gets a
    # throttled batch first and must back off with it while other keys wait in the queue.
    partitions, budget, hot, cold = 32, 50, 500, 800
    # The hot items need 10 s of their partition's budget (however fast the machine);
    # the cold ones spread over the other partitions fit their budgets at once:
    # unhindered they take 0.5-2 s.
    hot_ids, cold_ids = hot_and_cold(partitions, hot=hot, cold=cold)
    assert hot / budget >= 10
    assert cold / (partitions - 1) < budget
    # Hot first (batches that only the hot partition's budget can pass), then the cold.
    lines = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in hot_ids + cold_ids])
    table = make_table(gsi=False)
    proxy.config = FaultConfig(partitions=partitions, partition_wcu_per_s=budget)
    proxy.reset_stats()
    proxy.clear()

    # Retries enough for the hot drain: this test is about the keys that flow. A load
    # still running after 17 s (hot drain + 7 s) is stopped: that is a failure anyway.
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "loader", "load", str(tmp_path / "in.jsonl")),
            *("--table", table, "--endpoint-url", proxy.url),
            *("--max-retries", "30", "--workers", "16", "--no-progress"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = process.communicate(timeout=17)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()

    hot_keys = {record(i)["PK"] for i in hot_ids}
    cold_keys = {record(i)["PK"] for i in cold_ids}
    admitted = dict(proxy.admitted_at)
    t0 = min(admitted.values())  # from the first write admitted, not process start-up
    last = max(admitted.values()) - t0
    timeline = [
        (
            second,
            sum(1 for k in cold_keys if admitted.get(k, 1e9) - t0 < second + 1),
            sum(1 for k in hot_keys if admitted.get(k, 1e9) - t0 < second + 1),
        )
        for second in range(int(last) + 1)
    ]
    measured = f"(second, cold done, hot done) from the first write: {timeline}"
    throttled_requests = sum(1 for _, _, refused in proxy.log if refused)
    measured += f"; {throttled_requests} throttled requests"
    print(f"hot partition {partitions}x{budget}, {hot} hot, {cold} cold: {measured}")
    assert process.returncode == 0, f"{err[-1000:]} {measured}"
    assert_table_equals(stored(ddb_local.url, table), expected_of(lines))
    assert admitted.keys() == hot_keys | cold_keys
    assert proxy.stats().throttled_items > 0
    cold_done = max(admitted[k] for k in cold_keys) - t0
    hot_done = max(admitted[k] for k in hot_keys) - t0
    # Other workers keep going: every cold item is written before the hot partition is
    # through, although the cold items come after the hot ones in the input; and the job
    # takes no more than 1.5 times what the hot partition's budget allows at best (issue
    # 13's bound, relative to the proxy's clock, not to the machine's speed).
    assert cold_done < hot_done, measured
    assert hot_done <= 1.5 * hot / budget, measured
    # The throttled workers back off instead of hammering: resending at once for 10 s
    # would be thousands of throttled requests.
    assert throttled_requests < 40 * hot / 25, measured


@pytest.fixture(scope="module")
def exhausted_run(
    ddb_local: DynamoDBLocal, tmp_path_factory: pytest.TempPathFactory, processes: int
) -> dict[str, Any]:
    """One CLI load in which one key is refused every time: once everything else is
    written, its refusals are strikes, and with --max-retries 2 it runs out of them.
    Shared by the tests below (one run, several findings)."""
    tmp = tmp_path_factory.mktemp("exhausted")
    # 16 partitions of 20 WCU/s: the ~13 cold items of each cold partition fit its first
    # second's budget; the 150 hot items need 7 s of theirs, far beyond 3 attempts.
    partitions = 16
    hot_ids, cold_ids = hot_and_cold(partitions, hot=150, cold=200)
    rng = random.Random(5)
    ids = hot_ids + cold_ids
    rng.shuffle(ids)
    source = tmp / "in.jsonl"
    lines = write_jsonl(source, [record(i) for i in ids])
    table = create_table(ddb_local.url, gsi=False, name=f"exhausted-{time.time_ns()}")
    # A hot partition too: its refusals, while other writes go through, are no strikes.
    never = record(hot_ids[0])["PK"]  # a key DynamoDB never takes
    faults = FaultConfig(
        partitions=partitions, partition_wcu_per_s=20, hot_key=never, key_wcu_per_s=1e-9
    )
    with FaultProxy(ddb_local.url, faults) as p:
        args = [
            *(str(source), "--table", table, "--endpoint-url", p.url),
            *("--checkpoint", str(tmp / "checkpoint.json"), "--rejects", str(tmp / "rejects")),
            *processes_flag(processes),
        ]
        # A fixed rate keeps this run to ~1 s: the adaptive limiter would slow every key
        # down for the hot partition's sake (see the hot-partition test above).
        result = cli_load(*args, "--max-retries", "2", "--max-wcu", "1000", "--report",
                          str(tmp / "report.json"))  # fmt: skip
    return {
        "result": result,
        "args": args,
        "lines": lines,
        "tmp": tmp,
        "table": table,
        "stored": stored(ddb_local.url, table),
        "report": json.loads((tmp / "report.json").read_text()),
    }


def test_retries_exhausted_stop_the_job_and_reject_nothing(exhausted_run: dict[str, Any]) -> None:
    # A record is rejected for what DynamoDB says of it, never for its availability.
    run = exhausted_run
    result = run["result"]
    assert result.returncode == 3, result.stderr[-2000:]
    assert "outcome          retries exhausted: DynamoDB refused" in result.stdout
    assert "3 times in a row" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
    assert not (run["tmp"] / "rejects").exists()  # created at the first reject
    assert run["report"]["rejected"] == 0
    # What was written is the input's; all below the checkpoint was, and not all was.
    expected = expected_of(run["lines"])
    assert_table_holds(expected, run["stored"])
    done = records_done(run["tmp"] / "checkpoint.json")
    assert done < len(run["lines"])
    assert_table_holds(run["stored"], expected_of(run["lines"][:done]))


def test_after_retries_ran_out_resume_loads_exactly_the_input(
    ddb_local: DynamoDBLocal, exhausted_run: dict[str, Any]
) -> None:
    run = exhausted_run
    args = [a.replace(a, ddb_local.url) if a.startswith("http://") else a for a in run["args"]]
    result = cli_load(*args, "--resume")

    assert result.returncode == 0, result.stderr[-2000:]
    assert_table_equals(stored(ddb_local.url, run["table"]), expected_of(run["lines"]))


# --------------------------------------------------------------------------- 4. rate


async def test_max_wcu_holds_consumed_capacity_within_10_percent(
    make_table: TableFactory, proxy: RecordingProxy, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(3_300)])  # ~11 s at 300
    proxy.config = FaultConfig()
    proxy.reset_stats()

    report = await load(
        LoadConfig(
            sources=(str(tmp_path / "in.jsonl"),),
            table=table,
            endpoint_url=proxy.url,
            max_wcu=300,
        ),
        stop=asyncio.Event(),
    )

    assert report.outcome is Outcome.OK
    seconds = steady(proxy.stats().admitted_per_second, skip_s=2)
    assert len(seconds) >= 7, seconds
    mean = sum(seconds) / len(seconds)
    print(f"max_wcu=300: mean {mean:.1f} WCU/s, per second {seconds}")
    assert 270 <= mean <= 330, f"mean {mean:.0f} WCU/s over {seconds}"
    # Second by second too: a 25-WCU batch is 8% of a second's budget, so allow one
    # batch of jitter either side beyond the 10%.
    assert all(240 <= s <= 360 for s in seconds), seconds


@pytest.mark.timeout(90)
async def test_adaptive_rate_uses_90_percent_of_a_throttled_table(
    make_table: TableFactory, proxy: RecordingProxy, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    # ~24 s at 1,000: on a loaded machine the table first refused as late as 10 s in.
    write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(24_000)])
    proxy.config = FaultConfig(table_wcu_per_s=1_000)
    proxy.reset_stats()
    proxy.clear()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(60, stop.set)  # a collapsed limiter ends here

    report = await load(
        LoadConfig(sources=(str(tmp_path / "in.jsonl"),), table=table, endpoint_url=proxy.url),
        stop=stop,
    )

    # Settled: from 5 s after the table first refused. (Until its stored burst is spent
    # the table takes whatever comes, and there is no capacity to find: how long that
    # takes depends on how fast this machine sends, not on the limiter.)
    first = next((t for t, _, refused in proxy.log if refused), None)
    assert first is not None, f"the table never refused: {report.outcome}, {report.elapsed_s} s"
    settled = [(t, admitted, refused) for t, admitted, refused in proxy.log if t >= first + 5]
    assert settled, f"done within 5 s of the first refusal: {report.elapsed_s} s"
    last = settled[-1][0]
    per_second = [0.0] * int(last - (first + 5))  # whole seconds, the last partial one out
    for t, admitted, _ in settled:
        if int(t - (first + 5)) < len(per_second):
            per_second[int(t - (first + 5))] += admitted
    # A request is throttled when the budget refused any of its items (a 200 with
    # UnprocessedItems, as the loader's own report counts it) or all of them (an error).
    throttled = sum(1 for _, _, refused in settled if refused)
    wholly = sum(1 for _, admitted, refused in settled if refused and not admitted)
    share = throttled / len(settled)
    refused_items = sum(r for _, _, r in settled) / max(sum(a + r for _, a, r in settled), 1)
    mean = sum(per_second) / max(len(per_second), 1)
    # For the record, also as if settled 5 s after the first request, however late the
    # table first refused.
    late = [refused for t, _, refused in proxy.log if t >= proxy.log[0][0] + 5]
    measured = (
        f"settled: {mean:.0f} WCU/s of 1000 ({len(per_second)} s: {per_second}), "
        f"{throttled}/{len(settled)} requests throttled ({share:.0%}; wholly refused "
        f"{wholly}), {refused_items:.0%} of items sent refused; first refusal "
        f"{first - proxy.log[0][0]:.1f} s in ({sum(map(bool, late))}/{len(late)} throttled "
        f"from 5 s after the first request); outcome {report.outcome}, elapsed "
        f"{report.elapsed_s:.1f} s"
    )
    print(measured)
    assert report.outcome is Outcome.OK, measured
    assert len(per_second) >= 5, measured
    assert mean >= 900, measured
    # Issue 13's target is 10% (benchmarks/throttled.py measures it over longer runs);
    # 17 s runs here measured 6-10%, mostly in the probes, so the bar has room.
    assert share <= 0.15, measured


@pytest.mark.timeout(90)
async def test_adaptive_rate_is_not_collapsed_by_sporadic_faults(
    make_table: TableFactory, proxy: RecordingProxy, tmp_path: Path
) -> None:
    """Sporadic refusals that are no capacity shortage (a few % of requests partly
    unprocessed or refused by chance; no budget anywhere) must not drive the sending
    rate down for good. Two 8-second runs under the same faults, back to back: with the
    rate fixed (adaptive=False) and with the default adaptive limiter; from the 3rd
    second on the adaptive one must keep at least 70% of the fixed one's WCU/s.
    (Relative, so a busy machine slows both alike.)"""
    write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(40_000)])
    rates = {}
    for adaptive in (False, True):
        table = make_table(gsi=False)
        proxy.config = FaultConfig(
            p_unprocessed=0.05, p_request_limit=0.02, p_500_before=0.02, seed=7
        )
        proxy.reset_stats()
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(8, stop.set)
        await load(
            LoadConfig(
                sources=(str(tmp_path / "in.jsonl"),),
                table=table,
                endpoint_url=proxy.url,
                adaptive=adaptive,
            ),
            stop=stop,
        )
        seconds = steady(proxy.stats().admitted_per_second, skip_s=3)
        rates["adaptive" if adaptive else "fixed"] = (sum(seconds) / len(seconds), seconds)

    measured = ", ".join(
        f"{name}: {mean:.0f} WCU/s {[int(s) for s in seconds]}"
        for name, (mean, seconds) in rates.items()
    )
    print(f"sporadic faults: {measured}")
    # ~7% of requests refused by chance, judged against a window's spread by chance,
    # are no sign of a full table; nor are the windows in which a busy CPU sent less
    # (tests/test_pacing.py has this pattern in virtual time).
    assert rates["adaptive"][0] >= 0.7 * rates["fixed"][0], measured
