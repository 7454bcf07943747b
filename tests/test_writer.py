"""Workers and backoff against a fake DynamoDB that throttles: every record is written
exactly once or rejected with a reason, later writes of a key win, and a worker that
was throttled waits before it resends."""

from __future__ import annotations

import json
import random
from pathlib import Path

from loader import LoadConfig, load
from loader.errors import Outcome
from tests.fakes import FakeClock, FakeDynamo


def write_input(path: Path, count: int, *, duplicates_every: int = 0) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for i in range(count):
        records.append({"PK": f"P#{i}", "SK": "S", "v": i})
        if duplicates_every and i % duplicates_every == 0:
            records.append({"PK": f"P#{i // 2}", "SK": "S", "v": 100_000 + i})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def config(path: Path, tmp_path: Path, **extra: object) -> LoadConfig:
    return LoadConfig(
        sources=(str(path),),
        table="products",
        rejects=str(tmp_path / "rejects.jsonl"),
        backoff_base_s=0.05,
        backoff_cap_s=2.0,
        **extra,
    )  # type: ignore[arg-type]


async def test_throttled_items_are_each_written_exactly_once_and_the_last_write_wins(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    records = write_input(source, 3000, duplicates_every=10)
    clock = FakeClock()
    dynamo = FakeDynamo(clock, seed=3, p_throttle=0.2, p_unprocessed=0.3)

    # 44% of sends fail (20% whole, 30% of the rest's items): with 31 sends allowed no
    # record runs out of them (0.44^31 x 3,300 = 3e-8); the default 11 would lose ~0.4.
    report = await load(
        config(source, tmp_path, workers=8, max_retries=30),
        client=dynamo,
        clock=clock,
        rng=random.Random(5),
    )

    last = {(r["PK"], r["SK"]): r["v"] for r in records}
    assert {k: int(v["v"]["N"]) for k, v in dynamo.items.items()} == last
    # Each key was applied once per record that carried it: nothing lost, nothing doubled.
    per_key = {k: sum(1 for r in records if (r["PK"], r["SK"]) == k) for k in last}
    assert dict(dynamo.applied) == per_key
    assert report.items_written == len(records) == report.records_read
    assert report.rejected == 0
    assert report.unprocessed_retries > 0
    assert report.throttled_requests > 0


async def test_each_throttled_write_waits_its_backoff_before_it_is_resent(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source, 1000)
    clock = FakeClock()
    dynamo = FakeDynamo(clock, seed=1, p_unprocessed=0.5)

    # Rate control off: every sleep recorded is then a wait for a backoff to pass.
    await load(
        config(source, tmp_path, workers=4, adaptive=False),
        client=dynamo,
        clock=clock,
        rng=random.Random(2),
    )

    assert dynamo.resent_after, "some items must have been resent"
    # Full jitter can draw a tiny wait, but never none at all: each resend came after one.
    assert all(gap > 0 for gap in dynamo.resent_after)
    assert all(0 <= seconds <= 2.0 for seconds in clock.sleeps)


async def test_while_a_throttled_write_backs_off_its_worker_sends_the_other_writes(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source, 1000)
    clock = FakeClock()
    # The first record's key is refused three times: a hot partition of one key.
    dynamo = FakeDynamo(clock, refuse_first={"P#0": 3})

    report = await load(
        config(source, tmp_path, workers=1, adaptive=False), client=dynamo, clock=clock
    )

    assert report.items_written == 1000
    assert dynamo.applied[("P#0", "S")] == 1
    sends = [n for n, keys in enumerate(dynamo.calls) if ("P#0", "S") in keys]
    assert len(sends) == 4
    # One worker, yet every record went out between P#0's first send and its first
    # resend: the worker did not sit out P#0's backoff.
    before_resend = {key for keys in dynamo.calls[sends[0] : sends[1]] for key in keys}
    assert before_resend == {(f"P#{i}", "S") for i in range(1000)}
    assert len(dynamo.resent_after) == 3
    assert all(gap > 0 for gap in dynamo.resent_after)


async def test_leftovers_are_resent_in_full_batches_topped_up_with_fresh_writes(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source, 2000)
    clock = FakeClock()
    # Each call takes 10 ms of fake time, so leftovers come due while fresh writes wait.
    dynamo = FakeDynamo(clock, seed=4, p_unprocessed=0.2, latency_s=0.01)

    await load(
        config(source, tmp_path, workers=4, adaptive=False),
        client=dynamo,
        clock=clock,
        rng=random.Random(3),
    )

    # Until the input runs out, a resend of a few leftovers goes out topped up with
    # fresh writes, so throttling does not multiply requests.
    last_fresh = max(n for n, keys in enumerate(dynamo.calls) if ("P#1999", "S") in keys)
    calls = dynamo.calls[:last_fresh]
    seen: set[tuple[str, str]] = set()
    mixed = 0
    for keys in calls:
        mixed += 0 < len(seen.intersection(keys)) < len(keys)
        seen.update(keys)
    assert mixed > 0
    assert sum(len(keys) < 25 for keys in calls) < 0.2 * len(calls)


async def test_a_batch_dynamodb_refuses_is_narrowed_down_to_the_bad_item(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [{"PK": f"P#{i}", "SK": "S"} for i in range(100)]
    lines[37]["poison"] = True
    lines[80]["poison"] = True
    source.write_text("".join(json.dumps(r) + "\n" for r in lines))
    clock = FakeClock()
    dynamo = FakeDynamo(clock, poison="poison")

    report = await load(config(source, tmp_path, workers=2), client=dynamo, clock=clock)

    assert set(dynamo.items) == {(f"P#{i}", "S") for i in range(100)} - {
        ("P#37", "S"),
        ("P#80", "S"),
    }
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in rejects) == [38, 81]
    assert all("poisoned item" in r["reason"] for r in rejects)
    assert report.rejected == 2
    assert report.exit_status == 1


async def test_when_retries_run_out_the_job_stops_and_resume_writes_the_record(
    tmp_path: Path,
) -> None:
    # A record DynamoDB keeps refusing for its availability (throttled, unprocessed) is
    # no bad record: the job stops with it pending, and --resume sends it again.
    source, checkpoint = tmp_path / "in.jsonl", tmp_path / "checkpoint.json"
    records = write_input(source, 60)
    clock = FakeClock()
    dynamo = FakeDynamo(clock, always_unprocessed="P#7")
    settings = {"max_retries": 3, "checkpoint": str(checkpoint), "workers": 1}

    report = await load(config(source, tmp_path, **settings), client=dynamo, clock=clock)

    assert report.outcome is Outcome.RETRIES_EXHAUSTED
    assert report.exit_status == 3
    assert f"{source} line 8 4 times in a row" in report.reason
    assert report.rejected == 0
    assert not (tmp_path / "rejects.jsonl").exists()  # created at the first reject
    assert ("P#7", "S") not in dynamo.items
    done = json.loads(checkpoint.read_text())["records_done"]
    assert done == 7  # every record before it, and not it

    dynamo.always_unprocessed = None  # the table recovered
    resumed = await load(
        config(source, tmp_path, **settings, resume=True), client=dynamo, clock=clock
    )

    assert resumed.outcome is Outcome.OK
    assert resumed.skipped_on_resume == 7
    assert {k: int(v["v"]["N"]) for k, v in dynamo.items.items()} == {
        (r["PK"], r["SK"]): r["v"] for r in records
    }


async def test_with_max_retries_0_the_first_refusal_stops_the_job(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source, 50)
    clock = FakeClock()
    dynamo = FakeDynamo(clock, refuse_first={"P#3": 1})

    report = await load(config(source, tmp_path, max_retries=0), client=dynamo, clock=clock)

    assert report.outcome is Outcome.RETRIES_EXHAUSTED
    assert "line 4 1 time in a row" in report.reason
    assert report.rejected == 0
    assert ("P#3", "S") not in dynamo.items
    assert report.exit_status == 3
