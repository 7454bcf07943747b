"""An outage is waited out, not turned into rejects or a stopped job: sends wait while
DynamoDB does not answer at all, one probe at a time goes out, and writes keep their
retries for throttling. Past --give-up-after the job stops with its checkpoint."""

from __future__ import annotations

import json
import random
from pathlib import Path

from loader import LoadConfig, load
from loader.errors import Outcome
from loader.health import OUTAGE_AFTER, PROBE_CAP_S, Health
from loader.metrics import Metrics
from tests.fakes import FakeClock, FakeDynamo


def write_input(path: Path, count: int) -> dict[tuple[str, str], int]:
    path.write_text(
        "".join(json.dumps({"PK": f"P#{i}", "SK": "S", "v": i}) + "\n" for i in range(count))
    )
    return {(f"P#{i}", "S"): i for i in range(count)}


def config(tmp_path: Path, **extra: object) -> LoadConfig:
    return LoadConfig(
        sources=(str(tmp_path / "in.jsonl"),),
        table="products",
        rejects=str(tmp_path / "rejects.jsonl"),
        checkpoint=str(tmp_path / "checkpoint.json"),
        workers=8,
        **extra,
    )  # type: ignore[arg-type]


async def test_a_five_minute_outage_is_waited_out_and_every_record_written_once(
    tmp_path: Path,
) -> None:
    expected = write_input(tmp_path / "in.jsonl", 3000)
    clock = FakeClock()
    dynamo = FakeDynamo(clock, latency_s=0.01, outage=(clock.t + 0.3, clock.t + 300.3))

    # Three retries a write: a write resending on its own backoff would run out in
    # seconds; through the outage it spends none.
    report = await load(
        config(tmp_path, max_retries=3), client=dynamo, clock=clock, rng=random.Random(1)
    )

    assert report.outcome is Outcome.OK
    assert report.rejected == 0
    assert {k: int(v["v"]["N"]) for k, v in dynamo.items.items()} == expected
    assert set(dynamo.applied.values()) == {1}
    # Waiting, not hammering: the requests that found it down, those in flight then,
    # and one probe at a time (every PROBE_CAP_S at most, once it has grown).
    assert dynamo.outage_calls <= OUTAGE_AFTER + 8 + 300 / PROBE_CAP_S + 6


async def test_an_outage_past_give_up_after_stops_the_job_with_its_checkpoint(
    tmp_path: Path,
) -> None:
    expected = write_input(tmp_path / "in.jsonl", 3000)
    clock = FakeClock()
    dynamo = FakeDynamo(clock, latency_s=0.01, outage=(clock.t + 0.3, clock.t + 10_000))

    report = await load(
        config(tmp_path, give_up_after_s=120.0), client=dynamo, clock=clock, rng=random.Random(1)
    )

    assert report.outcome is Outcome.RETRIES_EXHAUSTED
    assert report.exit_status == 3
    assert report.reason.startswith("DynamoDB did not answer for 2 min")
    assert "(--give-up-after 2 min)" in report.reason
    assert report.rejected == 0
    assert not (tmp_path / "rejects.jsonl").exists()  # created at the first reject
    done = json.loads((tmp_path / "checkpoint.json").read_text())["records_done"]
    assert 0 < done < 3000
    assert {(f"P#{i}", "S") for i in range(done)} <= set(dynamo.items)
    assert set(dynamo.items) <= set(expected)


def test_a_few_failed_requests_are_a_blip_not_an_outage() -> None:
    clock = FakeClock()
    health = Health(clock, Metrics(clock.now()), give_up_after_s=60)
    for _ in range(OUTAGE_AFTER - 1):
        health.failed(probe=False)
    health.answered()
    for _ in range(OUTAGE_AFTER - 1):
        health.failed(probe=False)
    assert not health.down


async def test_while_down_one_send_probes_and_the_first_answer_lets_all_go() -> None:
    clock = FakeClock()
    metrics = Metrics(clock.now())
    health = Health(clock, metrics, give_up_after_s=60)
    for _ in range(OUTAGE_AFTER):
        health.failed(probe=False)
    assert health.down
    clock.t += 1.0
    assert metrics.snapshot(clock.now()).unavailable_s == 1.0

    assert await health.admit() is True  # the probe: the first interval has passed
    health.failed(probe=True)
    waited_from = clock.now()
    assert await health.admit() is True  # the next probe, an interval later
    assert clock.now() - waited_from >= 1.0  # the interval doubled
    health.answered()

    assert not health.down
    assert await health.admit() is False
    assert metrics.snapshot(clock.now()).unavailable_s == 0.0
