"""Leases: one table's capacity shared by the tasks of a fleet (Spark tasks on many
hosts), adaptively, instead of split statically when the tasks start.

A static split (the emr-dynamodb-connector's: capacity ÷ tasks, fixed at each task's
start) wastes what finished or starved tasks leave, and every task's bucket starting
full sends the fleet over the table's capacity at once. Here each task is paced by
the lower of two rates:

- its own, from the delivery-rate policy of `loader.pacing` on its own answers, as a
  loader process paces itself: the table's refusals reach it at once, not a round trip
  to the driver later (a policy in the driver, fed the fleet's answers a sync late,
  took the lag for capacity and sent a fifth over it);
- its grant from `Shares`, in the driver: a share of the fleet's rate, which is
  `--max-wcu` if given (each task then paces at its grant, as `--max-wcu` does), or
  else a fifth more than the fleet had accepted in a typical recent second. That
  ceiling is what makes the shares fair: a task far over the average is held to it
  while the others' own policies find the room it leaves. Shares are max-min fair: a
  task that could not use its share (a slow source, a busy host) is granted a little
  more than it used, and the rest is split among the others; a finished task's share
  goes to the ones still running, so a straggler's grows.

A grant holds for `TTL_S`. The driver never grants more than the rate less what the
others hold, so the grants never add up to more than the rate: a task joining gets
its share as the others renew theirs, smaller. A task's bucket starts empty (no
burst), and a task that cannot reach the driver sends nothing once its grant expired.

The service speaks one line of JSON each way per sync, over a TCP connection that
each task keeps open, and checks a token the driver hands its tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from loader.backoff import Clock, SystemClock
from loader.pacing import BURST_S, DeliveryRate, Pacer, TokenBucket

SYNC_S = 0.05  # a task tells what it sent and had accepted, and renews its grant, this often
TTL_S = 1.0  # a grant holds this long without a renewal
GONE_S = 3.0  # a task silent this long has died: its share goes to the others
LIMITED = 0.5  # a task that sent less than this share of what it may could not use it...
HEADROOM = 2.0  # ...and is granted this much more than it used...
MIN_GRANT = 25.0  # ...and at least this (a batch of 1 KB items a second)
ROOM = 1.2  # adapting, the fleet may send this much more than it had accepted...
BIN_S = 1.0  # ...in a span this long...
MEMORY_S = 5.0  # ...typically (the median) over the last this long
RECENT_S = 1.0  # what a task sends is smoothed over about this long
LOST_S = 120.0  # a task that cannot reach the driver this long stops


@dataclass(slots=True)
class _Task:
    grant: float | None = 0.0  # None: unlimited (the table has refused nothing yet)
    expires: float = 0.0
    seen: float = 0.0
    used: float = 0.0  # units a second it sent, lately
    room: float = 0.0  # and the lower of its grant and its own policy's rate, lately
    since: float = 0.0  # its first sync
    wish: float | None = None  # its own policy's rate; None: unlimited
    limited: bool = False


class Shares:
    """The fleet's rate and each task's grant of it (see the module)."""

    def __init__(self, clock: Clock, *, fixed: float | None) -> None:
        self._clock = clock
        self.fixed = fixed
        self.refused = False  # the table has refused some task something
        self._tasks: dict[str, _Task] = {}
        # Units a second the fleet had accepted, by BIN_S since the start: the median
        # of the last MEMORY_S is what the table takes, which neither a wave of tasks
        # ending and the next one starting lowers nor a burst the table had saved up
        # raises (it spends one in a second or two).
        self._bins: dict[int, float] = {}

    @property
    def rate(self) -> float | None:
        """Units a second for the whole fleet; None: no bound yet."""
        if self.fixed is not None:
            return self.fixed
        if not self.refused:
            return None
        bins = sorted(self._bins.values())
        typical = bins[len(bins) // 2] if bins else 0.0
        return max(MIN_GRANT * len(self._tasks), ROOM * typical)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def sync(
        self,
        task: str,
        *,
        sent: float,
        accepted: float,
        refused: float,
        span: float,
        wish: float | None = None,
        done: bool = False,
    ) -> float | None:
        """Task `task` sent `sent` units in the `span` seconds since its last sync, of
        which the table accepted `accepted` and refused (throttled) `refused`, and its
        own policy would send `wish` a second: its grant from now, units a second
        (None: unlimited)."""
        now = self._clock.now()
        self.refused = self.refused or refused > 0
        slot = int(now / BIN_S)
        self._bins[slot] = self._bins.get(slot, 0.0) + accepted / BIN_S
        for old in [b for b in self._bins if b <= slot - MEMORY_S / BIN_S]:
            del self._bins[old]
        if done:
            self._tasks.pop(task, None)
            return 0.0
        state = self._tasks.get(task)
        if state is None:
            state = self._tasks[task] = _Task(since=now)
        state.seen = now
        state.wish = wish
        room = _lower(state.grant, wish)
        if span > 0 and room is not None:
            # Both smoothed alike: at a few batches a second, most syncs see none go
            # out, and what it sent lags a grant that just grew.
            weight = min(1.0, span / RECENT_S)
            state.used += weight * (sent / span - state.used)
            state.room += weight * (room - state.room)
            # Sending well below what both its grant and its own policy allow: its
            # source or its host is the limit.
            settled = now - state.since > 2 * RECENT_S  # not starting up
            state.limited = settled and state.room > 0 and state.used < LIMITED * state.room
        else:
            state.limited = False
        for name in [n for n, t in self._tasks.items() if now - t.seen > GONE_S]:
            del self._tasks[name]
        rate = self.rate
        if rate is None:
            state.grant = None
        else:
            held = sum(
                t.grant
                for name, t in self._tasks.items()
                if name != task and t.grant is not None and t.expires > now
            )
            state.grant = max(0.0, min(self._targets(rate)[task], rate - held))
        state.expires = now + TTL_S
        return state.grant

    def _targets(self, rate: float) -> dict[str, float]:
        """Max-min fair: the tasks that want least are served first, in full; the others
        split what is left evenly."""
        wants = {
            name: max(MIN_GRANT, HEADROOM * t.used)
            if t.limited
            else math.inf
            if t.wish is None
            else ROOM * t.wish  # room for its own policy's probes
            for name, t in self._tasks.items()
        }
        targets: dict[str, float] = {}
        left, count = rate, len(wants)
        for name in sorted(wants, key=wants.__getitem__):
            targets[name] = min(wants[name], left / count)
            left -= targets[name]
            count -= 1
        return targets


class LeaseService:
    """`Shares` served to the tasks, from a thread of the driver's process: one
    `Shares` a job (a write), made at its first task's first sync."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self._host = host
        self.token = secrets.token_hex(16)
        self._clock = SystemClock()
        self.jobs: dict[str, Shares] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.address = ""

    def start(self) -> str:
        """Serve, and return the address the tasks connect to ("host:port")."""
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self.address = started.result(timeout=10)
        return self.address

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for handler in list(self._handlers):
                handler.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> LeaseService:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def _serve(self) -> str:
        self._server = await asyncio.start_server(self._client, self._host, 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            while line := await reader.readline():
                ask = orjson.loads(line)
                if ask.get("token") != self.token:
                    break
                job = str(ask["job"])
                shares = self.jobs.get(job)
                if shares is None:
                    fixed = None if ask["fixed"] is None else float(ask["fixed"])
                    shares = self.jobs[job] = Shares(self._clock, fixed=fixed)
                grant = shares.sync(
                    str(ask["task"]),
                    sent=float(ask["sent"]),
                    accepted=float(ask["accepted"]),
                    refused=float(ask["refused"]),
                    span=float(ask["span"]),
                    wish=None if ask["wish"] is None else float(ask["wish"]),
                    done=bool(ask["done"]),
                )
                writer.write(orjson.dumps({"rate": grant}) + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError, KeyError, TypeError):
            pass  # a task that died mid-line, or not one of ours: its share times out
        finally:
            self._handlers.discard(handler)
            writer.close()


class _Ceiled(TokenBucket):
    """A bucket at the lower of the task's own policy's rate and the driver's grant."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock, 0.0, burst_s=BURST_S)  # empty: no burst at the start
        self.wish: float | None = None  # the task's own policy's rate; None: unlimited
        self.grant: float | None = 0.0  # nothing until the first grant

    def set_rate(self, rate: float | None) -> None:
        self.wish = rate
        super().set_rate(_lower(rate, self.grant))

    def granted(self, grant: float | None) -> None:
        self.grant = grant
        super().set_rate(_lower(self.wish, grant))


def _lower(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


class LeasedPacer(Pacer):
    """A task's pacer: its own delivery-rate policy (none with a fixed rate), under the
    driver's grant; what it sent, had accepted and refused is kept for the next sync."""

    def __init__(self, clock: Clock, *, adaptive: bool, rng: random.Random | None = None) -> None:
        super().__init__(clock, fixed=None, adaptive=False)
        self.bucket = _Ceiled(clock)
        if adaptive:
            self.policy = DeliveryRate(clock, self.bucket, rng or random.Random())
        self.sent = self.accepted = self.refused = 0.0

    def settle(
        self,
        *,
        taken: float,
        consumed: float,
        refused: float = 0.0,
        key_range: float = 0.0,
    ) -> None:
        super().settle(taken=taken, consumed=consumed, refused=refused, key_range=key_range)
        self.sent += taken
        self.accepted += consumed
        # A hot key range's refusals are its keys' business (loader.pacing).
        self.refused += max(0.0, refused - key_range)

    def granted(self, grant: float | None) -> None:
        assert isinstance(self.bucket, _Ceiled)
        self.bucket.granted(grant)


@contextlib.asynccontextmanager
async def leased(
    address: str,
    token: str,
    job: str,
    task: str,
    pacer: LeasedPacer,
    *,
    fixed: float | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[asyncio.Event]:
    """Keep `pacer`'s rate at the driver's grant for `task` of `job` (whose tasks share
    `fixed` units a second, or the table's delivery rate) while the block runs; the
    first grant is in before it starts. Yields an event set if the driver has been
    out of reach for `LOST_S`: the caller stops its job."""
    clock = clock or SystemClock()
    lost = asyncio.Event()
    host, _, port = address.rpartition(":")
    state: dict[str, Any] = {"conn": None, "last": clock.now()}

    async def sync(done: bool) -> None:
        now = clock.now()
        ask = {
            "token": token,
            "job": job,
            "fixed": fixed,
            "task": task,
            "sent": pacer.sent,
            "accepted": pacer.accepted,
            "refused": pacer.refused,
            "wish": pacer.bucket.wish if isinstance(pacer.bucket, _Ceiled) else None,
            "span": now - state["last"],
            "done": done,
        }
        pacer.sent = pacer.accepted = pacer.refused = 0.0
        state["last"] = now
        if state["conn"] is None:
            state["conn"] = await asyncio.open_connection(host, int(port))
        reader, writer = state["conn"]
        writer.write(orjson.dumps(ask) + b"\n")
        await writer.drain()
        line = await reader.readline()
        if not line:
            state["conn"] = None
            writer.close()
            raise ConnectionError("the lease service closed the connection")
        pacer.granted(orjson.loads(line)["rate"])

    async def renew() -> None:
        granted = clock.now()
        while True:
            await clock.sleep(SYNC_S)
            try:
                await asyncio.wait_for(sync(False), TTL_S)
                granted = clock.now()
            except (OSError, TimeoutError, ValueError):
                state["conn"] = None
                if clock.now() - granted > TTL_S - SYNC_S:
                    pacer.granted(0.0)  # the grant is over: send nothing
                if clock.now() - granted > LOST_S:
                    lost.set()

    try:
        await sync(False)
        renewing = asyncio.create_task(renew())
        try:
            yield lost
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                await asyncio.wait_for(sync(True), TTL_S)
    finally:
        if state["conn"] is not None:
            state["conn"][1].close()
            with contextlib.suppress(OSError):
                await state["conn"][1].wait_closed()
