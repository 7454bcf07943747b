"""Leases: the fleet's grants never add up to more than its rate, each running task
gets its fair part, and what a task cannot use, or leaves, goes to the others."""

from __future__ import annotations

import asyncio
import random

import pytest

from loader.backoff import SystemClock
from loader.lease import (
    GONE_S,
    RECENT_S,
    ROOM,
    SYNC_S,
    TTL_S,
    LeasedPacer,
    LeaseService,
    Shares,
    leased,
)
from loader.pacing import TokenBucket
from tests.fakes import FakeClock
from tests.pacing_sim import Loader, Table, run_fleet


def held(
    shares: Shares, grants: dict[str, float | None], now: float, since: dict[str, float]
) -> float:
    """What the tasks hold at `now`: the grants not yet expired."""
    return sum(g or 0.0 for name, g in grants.items() if now < since[name] + TTL_S)


def fleet(
    shares: Shares, clock: FakeClock, tasks: list[str], seconds: float
) -> dict[str, float | None]:
    """Every task syncs each SYNC_S, as if it used all it was granted."""
    grants: dict[str, float | None] = dict.fromkeys(tasks, 0.0)
    since = dict.fromkeys(tasks, clock.t)
    end = clock.t + seconds
    while clock.t < end:
        for name in tasks:
            clock.t += SYNC_S / len(tasks)
            grants[name] = sync(shares, name, sent=(grants[name] or 0.0) * SYNC_S)
            since[name] = clock.t
            assert held(shares, grants, clock.t, since) <= shares.rate + 1e-6  # type: ignore[operator]
    return grants


def test_a_fixed_rate_is_split_evenly_and_never_over_granted_as_tasks_come() -> None:
    clock = FakeClock(start=0.0)
    shares = Shares(clock, fixed=1200.0)
    grants = fleet(shares, clock, ["a"], 2)
    assert grants["a"] == pytest.approx(1200.0)
    grants = fleet(shares, clock, ["a", "b", "c"], 3)
    assert [grants[n] for n in "abc"] == pytest.approx([400.0] * 3)


def test_a_task_that_joins_waits_for_the_others_to_give_up_their_part() -> None:
    clock = FakeClock(start=0.0)
    shares = Shares(clock, fixed=1000.0)
    assert sync(shares, "a", span=0) == 1000.0
    # "a" holds all of it for TTL_S: "b" gets nothing yet, not a second 500.
    assert sync(shares, "b", span=0) == 0.0
    clock.t += SYNC_S
    assert sync(shares, "a", sent=50) == 500.0
    assert sync(shares, "b") == 500.0


def test_a_finished_task_s_part_goes_to_the_stragglers() -> None:
    clock = FakeClock(start=0.0)
    shares = Shares(clock, fixed=900.0)
    fleet(shares, clock, ["a", "b", "c"], 2)
    assert shares.sync("c", sent=0, accepted=0, refused=0, span=SYNC_S, done=True) == 0.0
    grants = fleet(shares, clock, ["a", "b"], 2)
    assert [grants["a"], grants["b"]] == pytest.approx([450.0, 450.0])


def test_a_task_that_died_silently_has_its_part_handed_on() -> None:
    clock = FakeClock(start=0.0)
    shares = Shares(clock, fixed=900.0)
    fleet(shares, clock, ["a", "b", "c"], 2)
    grants = fleet(shares, clock, ["a", "b"], GONE_S + 2)
    assert shares.running == 2
    assert [grants["a"], grants["b"]] == pytest.approx([450.0, 450.0])


def sync(
    shares: Shares, task: str, sent: float = 0.0, span: float = SYNC_S, **more: float
) -> float | None:
    return shares.sync(task, sent=sent, accepted=sent, refused=0, span=span, **more)  # type: ignore[arg-type]


def test_a_task_that_cannot_use_its_part_gives_it_to_the_others() -> None:
    clock = FakeClock(start=0.0)
    shares = Shares(clock, fixed=1000.0)
    grants: dict[str, float | None] = {"fast": 0.0, "slow": 0.0}
    for _ in range(int(4 * RECENT_S / SYNC_S)):
        clock.t += SYNC_S
        grants["fast"] = sync(shares, "fast", sent=(grants["fast"] or 0) * SYNC_S)
        # The slow one's source gives it 100 items a second, whatever it is granted.
        grants["slow"] = sync(shares, "slow", sent=100 * SYNC_S)
    assert grants["slow"] == pytest.approx(200.0, rel=0.05)  # what it used, and room
    assert grants["fast"] == pytest.approx(800.0, rel=0.05)


def test_a_task_held_back_by_its_own_pace_is_not_taken_for_one_that_cannot_send() -> None:
    # A task whose own policy paces it at 300 (it found the table refusing above that)
    # sends 300: its share stays open to what its own probes find, a fifth above.
    clock = FakeClock(start=0.0)
    shares = Shares(clock, fixed=1000.0)
    for _ in range(int(4 * RECENT_S / SYNC_S)):
        clock.t += SYNC_S
        own = sync(shares, "own", sent=300 * SYNC_S, wish=300.0)
        sync(shares, "other", sent=(700 * SYNC_S))
    assert own == pytest.approx(ROOM * 300.0)


def test_adapting_the_fleet_may_send_a_fifth_more_than_the_table_took_and_no_more() -> None:
    clock = FakeClock(start=0.0)
    shares = Shares(clock, fixed=None)
    assert sync(shares, "a", span=0) is None  # nothing refused yet: no bound
    # Two tasks each send 1,000 a second, and the table takes 600 of each.
    for _ in range(int(6 / SYNC_S)):
        clock.t += SYNC_S
        for name in ("a", "b"):
            shares.sync(name, sent=50.0, accepted=30.0, refused=20.0, span=SYNC_S)
    assert shares.rate == pytest.approx(ROOM * 1200, rel=0.02)
    a, b = (sync(shares, n, sent=30.0) for n in ("a", "b"))
    assert a is not None
    assert b is not None
    assert a + b <= shares.rate + 1e-6


def test_a_burst_the_table_spent_is_no_capacity_and_a_wave_of_tasks_ending_no_fall() -> None:
    clock = FakeClock(start=0.0)
    shares = Shares(clock, fixed=None)
    accepted = [3000.0] + [1000.0] * 3 + [100.0] + [1000.0] * 2  # a burst; a task ended
    for second, rate in enumerate(accepted):
        clock.t = float(second)
        for _ in range(int(1 / SYNC_S)):
            clock.t += SYNC_S
            shares.sync("a", sent=rate * SYNC_S, accepted=rate * SYNC_S, refused=1, span=SYNC_S)
    assert shares.rate == pytest.approx(ROOM * 1000, rel=0.05)


def spark_tasks(seed: int, fixed: float | None) -> list[Loader]:
    """Eight partitions of 5,000 items, each task able to send 3,000 a second."""
    return [
        Loader(
            items=5000,
            seed=seed * 10 + n,
            cpu_items_per_s=3000,
            make_pacer=lambda clock, n=n: LeasedPacer(
                clock, adaptive=fixed is None, rng=random.Random(seed * 100 + n)
            ),
        )
        for n in range(8)
    ]


def task_rates(tasks: list[Loader]) -> list[float]:
    """Each task's items a second, from its first answer to its last."""
    assert all(t.written == t.items for t in tasks)
    return [t.written / (t.log[-1][0] - t.log[0][0]) for t in tasks]


def job_end(tasks: list[Loader]) -> float:
    return max(t.log[-1][0] for t in tasks)


@pytest.mark.parametrize("seed", range(1, 6))
def test_eight_tasks_on_two_slots_share_a_table_s_capacity_without_a_bound(seed: int) -> None:
    # What the driver knows of the table is what its tasks had accepted; each task's
    # own policy finds the table's limit. The whole job: 40,000 items at 2,000 a second.
    tasks = spark_tasks(seed, fixed=None)
    run_fleet(Table(capacity=lambda t: 2000.0, seed=seed), tasks, 60, slots=2, fixed=None)
    end = job_end(tasks)
    assert 40_000 / end >= 0.8 * 2000
    answers = [refused for t in tasks for _, _, refused in t.log]
    assert sum(answers) / len(answers) <= 0.2  # requests with refusals
    assert min(task_rates(tasks)) >= 0.5 * 2000 / 2  # none starved


@pytest.mark.parametrize("seed", range(1, 4))
def test_with_a_bound_eight_tasks_on_two_slots_use_it_evenly_and_never_pass_it(seed: int) -> None:
    tasks = spark_tasks(seed, fixed=1500.0)
    run_fleet(Table(capacity=lambda t: 2000.0, seed=seed), tasks, 60, slots=2, fixed=1500.0)
    end = job_end(tasks)
    assert 40_000 / end >= 0.95 * 1500
    assert 40_000 / end <= 1500 * 1.01
    assert min(task_rates(tasks)) >= 0.9 * 1500 / 2


async def test_a_zero_rate_sends_nothing_until_it_changes() -> None:
    clock = FakeClock(start=0.0)
    bucket = TokenBucket(clock, 0.0, burst_s=0.2)
    sending = asyncio.create_task(bucket.acquire(10))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not sending.done()
    bucket.set_rate(100.0)
    await asyncio.wait_for(sending, 1)
    assert clock.t < 10  # it went at the new rate, not after a wait taken at zero


async def send(pacer: LeasedPacer, sent: list[float]) -> None:
    """A task's writes: 10 units at a time, as fast as its grant lets them go, all taken."""
    while True:
        await pacer.acquire(10)
        pacer.settle(taken=10, consumed=10)
        sent.append(10)


async def test_tasks_take_their_grants_from_the_service_and_give_them_back() -> None:
    with LeaseService() as service:
        pacers = [LeasedPacer(SystemClock(), adaptive=False) for _ in range(2)]
        sent: list[list[float]] = [[], []]
        async with (
            leased(service.address, service.token, "job", "t1", pacers[0], fixed=600.0),
            leased(service.address, service.token, "job", "t2", pacers[1], fixed=600.0),
        ):
            # The bucket starts empty: no burst, whatever the grant.
            assert pacers[0].bucket._tokens == 0.0
            senders = [asyncio.create_task(send(p, s)) for p, s in zip(pacers, sent, strict=True)]
            await asyncio.sleep(TTL_S + 10 * SYNC_S)
            rates = [p.rate for p in pacers]
            for sender in senders:
                sender.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
        assert rates == pytest.approx([300.0, 300.0])
        # Never more than the fleet's 600 a second (and the 10 units each went out on).
        assert sum(map(sum, sent)) <= 600 * (TTL_S + 10 * SYNC_S) + 20
        assert service.jobs["job"].running == 0


async def test_a_task_with_the_wrong_token_is_granted_nothing() -> None:
    with LeaseService() as service:
        pacer = LeasedPacer(SystemClock(), adaptive=False)
        with pytest.raises(ConnectionError):
            async with leased(service.address, "not-it", "job", "t1", pacer, fixed=600.0):
                pass
        assert pacer.rate == 0.0
