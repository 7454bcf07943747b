"""Workers and backoff against a fake DynamoDB that throttles: every record is written
exactly once or rejected with a reason, later writes of a key win, and a worker that
was throttled waits before it resends."""

from __future__ import annotations

import json
import random
from pathlib import Path

from loader import LoadConfig, load
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
        table="t",
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

    report = await load(
        config(source, tmp_path, workers=8), client=dynamo, clock=clock, rng=random.Random(5)
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


async def test_a_worker_waits_with_backoff_before_resending_what_was_throttled(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source, 1000)
    clock = FakeClock()
    dynamo = FakeDynamo(clock, seed=1, p_unprocessed=0.5)

    # Rate control off: every sleep recorded is then a backoff.
    await load(
        config(source, tmp_path, workers=4, adaptive=False),
        client=dynamo,
        clock=clock,
        rng=random.Random(2),
    )

    assert dynamo.resent_after, "some items must have been resent"
    # Full jitter can draw a tiny wait, but never none at all: each resend came after a sleep.
    assert all(gap > 0 for gap in dynamo.resent_after)
    assert all(0 <= seconds <= 2.0 for _, seconds in clock.sleeps)
    # Several workers shared the load, and the sleepers were the workers themselves.
    assert len(dynamo.calls_by_task) == 4
    assert {name for name, _ in clock.sleeps} <= set(dynamo.calls_by_task)


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


async def test_when_retries_run_out_the_records_are_rejected_not_dropped(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source, 60)
    clock = FakeClock()
    dynamo = FakeDynamo(clock, always_unprocessed="P#7")

    report = await load(config(source, tmp_path, max_retries=3), client=dynamo, clock=clock)

    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], json.loads(r["record"])["PK"]) for r in rejects] == [(8, "P#7")]
    assert "gave up after 4 attempts" in rejects[0]["reason"]
    assert report.items_written == 59
    assert report.rejected == 1
    assert report.items_written + report.rejected == report.records_read
    assert report.exit_status == 3  # the job finished, but DynamoDB kept refusing a record
    assert report.outcome.startswith("retries exhausted")
