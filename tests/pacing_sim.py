"""A table and loaders in virtual time, to test the pacing policy against each pattern of
refusal the real service produces, in milliseconds and whatever the machine's load.

The table admits items from a bucket holding one second of its capacity (which can
change over time), refuses a share of items by chance whatever the rate (a flaky back
end), and can hold one hot partition key with a budget of its own. Each loader is what
the loader's workers do: batches of 25 with due retries first, at most one operation of
a key in flight (so the hot key's items go one at a time), full-jitter backoff by
attempts, a CPU that can prepare only so many items a second, and its own `Pacer`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from loader.backoff import Backoff
from loader.pacing import Pacer

BATCH = 25


class _Sleep:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __await__(self) -> Any:
        yield self


class SimClock:
    """Virtual time: a sleep yields to `run`'s scheduler."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> Any:
        return _Sleep(max(0.0, seconds))


@dataclass
class Table:
    capacity: Callable[[float], float | None] = lambda t: None  # WCU/s at time t; None: any
    refuse: float = 0.0  # share of items refused by chance, whatever the rate
    refuse_requests: float = 0.0  # share of requests with 1..all their items refused, by chance
    hot_rate: float | None = None  # WCU/s of the hot key (items whose number % 10 == 0)
    reasons: bool = False  # answers say which refusals are a key range's (ThrottlingReasons)
    seed: int = 7
    rng: random.Random = field(init=False)
    _tokens: float = field(init=False, default=-1.0)
    _hot_tokens: float = field(init=False, default=-1.0)
    _stamp: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def offer(self, now: float, items: list[int]) -> tuple[list[int], int]:
        """The items refused, and how many of them for the hot key's budget."""
        rate = self.capacity(now)
        elapsed = now - self._stamp
        self._stamp = now
        if rate is not None:
            self._tokens = rate if self._tokens < 0 else min(rate, self._tokens + elapsed * rate)
        if self.hot_rate is not None:
            hot = self.hot_rate
            self._hot_tokens = (
                hot if self._hot_tokens < 0 else min(hot, self._hot_tokens + elapsed * hot)
            )
        refused: list[int] = []
        by_key = 0
        if self.refuse_requests and self.rng.random() < self.refuse_requests:
            return items[: self.rng.randint(1, len(items))], 0
        for item in items:
            if self.refuse and self.rng.random() < self.refuse:
                refused.append(item)
            elif item % 10 == 0 and self.hot_rate is not None and self._hot_tokens < 1:
                refused.append(item)
                by_key += 1
            elif rate is not None and self._tokens < 1:
                refused.append(item)
            else:
                if rate is not None:
                    self._tokens -= 1
                if item % 10 == 0 and self.hot_rate is not None:
                    self._hot_tokens -= 1
        return refused, by_key


@dataclass
class Loader:
    """One loader process: `items` 1-WCU items (or endless), `workers` in flight."""

    items: int | None = None
    workers: int = 32
    latency_s: float = 0.01
    cpu_items_per_s: float = 4000.0  # what the client can prepare and send, unpaced
    busy: Callable[[float], float] = lambda t: 1.0  # the share of that CPU left at time t
    fixed: float | None = None  # --max-wcu
    seed: int = 1
    start_s: float = 0.0  # when it starts: processes started together are some ms apart
    hot_keys: bool = False  # every tenth item has the one hot key
    make_pacer: Callable[[SimClock], Pacer] | None = None  # another policy, for comparison
    pacer: Pacer = field(init=False)
    done_at: float | None = None
    log: list[tuple[float, int, bool]] = field(default_factory=list)  # (when, accepted, refused)
    written: int = 0

    def start(self, clock: SimClock) -> None:
        self.clock = clock
        self.pacer = (
            self.make_pacer(clock)
            if self.make_pacer
            else Pacer(clock, fixed=self.fixed, rng=random.Random(self.seed + 2))
        )
        self.rng = random.Random(self.seed)
        self.backoff = Backoff(rng=random.Random(self.seed + 1))
        self.fresh = 0
        self.retries: list[tuple[float, int]] = []
        self.attempts: dict[int, int] = {}
        self.hot_busy = False  # one operation of the hot key in flight or waiting to retry
        self.hot_waiting: list[int] = []
        self.cpu_free = 0.0
        self.flying = 0  # batches taken and not yet answered

    def _fresh(self) -> int | None:
        if self.hot_waiting and not self.hot_busy:
            self.hot_busy = True
            return self.hot_waiting.pop(0)
        while self.items is None or self.fresh < self.items:
            item = self.fresh
            self.fresh += 1
            if self.hot_keys and item % 10 == 0:
                if self.hot_busy:
                    self.hot_waiting.append(item)
                    continue
                self.hot_busy = True
            return item
        return None

    def _take(self) -> list[int]:
        batch: list[int] = []
        while self.retries and self.retries[0][0] <= self.clock.t and len(batch) < BATCH:
            batch.append(heapq.heappop(self.retries)[1])
        while len(batch) < BATCH and (item := self._fresh()) is not None:
            batch.append(item)
        return batch

    def finished(self) -> bool:
        pending = self.retries or self.hot_waiting or self.hot_busy or self.attempts or self.flying
        return self.items is not None and self.fresh >= self.items and not pending

    async def worker(self, table: Table, until: float) -> None:
        clock = self.clock
        if self.start_s:
            await clock.sleep(self.start_s)
        while clock.t < until and self.done_at is None:
            batch = self._take()
            if not batch:
                if self.finished():
                    self.done_at = self.done_at or clock.t
                    return
                await clock.sleep(0.005)
                continue
            self.flying += 1
            start = max(clock.t, self.cpu_free)
            self.cpu_free = start + len(batch) / (self.cpu_items_per_s * self.busy(start))
            await clock.sleep(self.cpu_free - clock.t)
            await self.pacer.acquire(len(batch))
            await clock.sleep(self.latency_s * self.rng.uniform(0.7, 1.3))
            self.flying -= 1
            refused, by_key = table.offer(clock.t, batch)
            self.pacer.settle(
                taken=len(batch),
                consumed=len(batch) - len(refused),
                refused=len(refused),
                key_range=by_key if table.reasons else 0,
            )
            self.log.append((clock.t, len(batch) - len(refused), bool(refused)))
            self.written += len(batch) - len(refused)
            gone = set(refused)
            for item in batch:
                if item in gone:
                    failed = self.attempts.get(item, 0) + 1
                    self.attempts[item] = failed
                    heapq.heappush(self.retries, (clock.t + self.backoff.delay(failed), item))
                else:
                    self.attempts.pop(item, None)
                    if self.hot_keys and item % 10 == 0:
                        self.hot_busy = False

    def rate(self, start: float, end: float) -> float:
        """Items accepted a second between `start` and `end`."""
        return sum(n for t, n, _ in self.log if start <= t < end) / (end - start)

    def refused_share(self, start: float, end: float) -> float:
        """Share of requests that came back with items refused, between the two."""
        answers = [r for t, _, r in self.log if start <= t < end]
        return sum(answers) / max(1, len(answers))


def run(table: Table, loaders: list[Loader], seconds: float) -> None:
    """Run every loader's workers against `table` for `seconds` of virtual time (or
    until each has written all its items)."""
    clock = SimClock()
    coroutines: dict[int, Coroutine[Any, Any, None]] = {}
    queue: list[tuple[float, int]] = []
    serial = 0
    for loader in loaders:
        loader.start(clock)
        for w in range(loader.workers):
            coroutines[serial] = loader.worker(table, seconds)
            heapq.heappush(queue, (w * loader.latency_s / loader.workers, serial))
            serial += 1
    _schedule(clock, coroutines, queue)


def _schedule(
    clock: SimClock,
    coroutines: dict[int, Coroutine[Any, Any, None]],
    queue: list[tuple[float, int]],
) -> None:
    """Run the coroutines, each from its time in `queue`, until all have returned."""
    serial = max(coroutines, default=0) + 1
    while queue:
        t, i = heapq.heappop(queue)
        clock.t = max(clock.t, t)
        try:
            pause = coroutines[i].send(None)
        except StopIteration:
            del coroutines[i]
            continue
        coroutines[serial] = coroutines.pop(i)
        heapq.heappush(queue, (clock.t + pause.seconds, serial))
        serial += 1


def run_fleet(
    table: Table, tasks: list[Loader], seconds: float, *, slots: int, fixed: float | None
) -> None:
    """Spark's way: `tasks` run `slots` at a time, each next one as soon as a slot frees,
    each paced by a `LeasedPacer` that syncs with the driver's `Shares` (loader.lease)
    every SYNC_S and gets its grant a network hop later."""
    from loader.lease import SYNC_S, LeasedPacer, Shares

    clock = SimClock()
    shares = Shares(clock, fixed=fixed)
    coroutines: dict[int, Coroutine[Any, Any, None]] = {}
    queue: list[tuple[float, int]] = []
    started: set[int] = set()
    hop_s = 0.002

    def ready(task: Loader) -> bool:
        if id(task) not in started:
            running = sum(1 for t in tasks if id(t) in started and t.done_at is None)
            if running >= slots or any(id(t) not in started for t in tasks[: tasks.index(task)]):
                return False
            started.add(id(task))
        return True

    async def syncer(task: Loader, name: str) -> None:
        while not ready(task):
            await clock.sleep(0.01)
        pacer = task.pacer
        assert isinstance(pacer, LeasedPacer)
        last = clock.t
        while task.done_at is None and clock.t < seconds:
            grant = shares.sync(
                name,
                sent=pacer.sent,
                accepted=pacer.accepted,
                refused=pacer.refused,
                span=clock.t - last,
                wish=pacer.bucket.wish,  # type: ignore[attr-defined]
            )
            last = clock.t
            pacer.sent = pacer.accepted = pacer.refused = 0.0
            await clock.sleep(hop_s)
            pacer.granted(grant)
            await clock.sleep(SYNC_S)
        shares.sync(name, sent=0, accepted=0, refused=0, span=SYNC_S, done=True)

    async def worker(task: Loader) -> None:
        while not ready(task):
            await clock.sleep(0.01)
        await clock.sleep(2 * hop_s)  # the first grant is in before the first send
        await task.worker(table, seconds)

    for n, task in enumerate(tasks):
        task.start(clock)
        for coroutine in [syncer(task, f"task {n}"), *(worker(task) for _ in range(task.workers))]:
            coroutines[len(coroutines)] = coroutine
            heapq.heappush(queue, (0.0, len(coroutines) - 1))
    _schedule(clock, coroutines, queue)
