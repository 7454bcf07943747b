"""Read a load back with BatchGetItem (100 keys a call) and report what is missing or different.

Keys go through the same batcher as writes, so the checks of one key happen in
input order; a later record of a key supersedes the verdict on an earlier one,
which is last-write-wins applied to the source without holding it in memory.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from loader.backoff import Backoff, Clock, SystemClock
from loader.batcher import Dispatch, batches
from loader.codec import Item, KeySchema, Write, same_item
from loader.config import LoadConfig
from loader.errors import (
    Aborted,
    ConfigError,
    Outcome,
    RequestRejected,
    RetriesExhausted,
    TransientError,
)
from loader.metrics import LoadReport
from loader.pipeline import Job
from loader.preflight import connect

MAX_GET_KEYS = 100
MAX_PROBLEMS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a read-back found. `problems` lists each bad record (source, line, key, problem)."""

    records_read: int
    checked: int
    missing: int
    different: int
    rejected: int
    consumed_rcu: float
    requests: int
    elapsed_s: float
    problems: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""  # why the check stopped before the end of the input, if it did

    @property
    def exit_status(self) -> int:
        """0 all there, 1 problems found, 3 stopped short (the rest is unchecked)."""
        if self.stopped:
            return 3
        return 1 if self.missing or self.different or self.rejected else 0


async def verify(
    config: LoadConfig,
    *,
    compare: bool = False,
    client: Any = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> VerifyReport:
    """Check that every record of `config.sources` is in its table (whole items with `compare`).

    Raises:
        ConfigError: bad configuration, found before anything is read.
    """
    clock = clock or SystemClock()
    async with connect(config, client) as (dynamo, sources, schemas):
        checkers: list[_Checker] = []

        def make(job: Job) -> _Checker:
            checkers.append(_Checker(job, schemas, compare))
            return checkers[0]

        job = Job(
            config,
            dynamo,
            schemas,
            sources,
            clock,
            rng or random.Random(),
            None,
            batch_ops=MAX_GET_KEYS,
            worker=make,
        )
        report = await job.run()
        return checkers[0].report(report)


class _Checker:
    def __init__(self, job: Job, schemas: dict[str, KeySchema], compare: bool) -> None:
        self._job = job
        self._schemas = schemas
        self._compare = compare
        self.problems: dict[tuple[str, ...], dict[str, Any]] = {}
        self.checked = 0
        self.rcu = 0.0
        self.requests = 0

    def report(self, load: LoadReport) -> VerifyReport:
        """What the check found, with the reading's counts from `load`."""
        problems = sorted(self.problems.values(), key=lambda p: p["seq"])
        for problem in problems:
            del problem["seq"]
        return VerifyReport(
            records_read=load.records_read,
            checked=self.checked,
            missing=sum(1 for p in problems if p["problem"] == "missing"),
            different=sum(1 for p in problems if p["problem"] != "missing"),
            rejected=load.rejected,
            consumed_rcu=round(self.rcu, 3),
            requests=self.requests,
            elapsed_s=load.elapsed_s,
            problems=problems[:MAX_PROBLEMS_KEPT],
            stopped=load.reason if load.outcome.stopped_early else "",
        )

    async def run(self, dispatch: Dispatch) -> None:
        async for batch in batches(dispatch):
            found = await self._fetch(batch)
            for write in batch:
                self._judge(write, found.get(write.key))
            self.checked += len(batch)
            self._job.ledger.written(batch)

    async def _fetch(self, batch: list[Write]) -> dict[tuple[str, ...], Item]:
        request: dict[str, Any] = {}
        for write in batch:
            schema = self._schemas[write.table]
            entry = request.get(write.table)
            if entry is None:
                entry = request[write.table] = {"Keys": [], "ConsistentRead": True}
                if not self._compare:
                    names = {f"#k{i}": name for i, name in enumerate(schema.names)}
                    entry["ProjectionExpression"] = ", ".join(names)
                    entry["ExpressionAttributeNames"] = names
            body = (
                write.request.get("PutRequest", {}).get("Item")
                or write.request["DeleteRequest"]["Key"]
            )
            entry["Keys"].append(schema.project(body))
        found: dict[tuple[str, ...], Item] = {}
        try:
            result = await batch_get(
                self._job.client,
                request,
                self._job.clock,
                self._job.backoff,
                self._job.config.give_up_after_s,
            )
        except (RetriesExhausted, RequestRejected) as exc:
            # Nothing was judged of these keys: the check stops short (exit 3), never
            # reporting them missing.
            raise Aborted(str(exc), Outcome.RETRIES_EXHAUSTED) from None
        for table, item in result.items:
            found[self._schemas[table].key_of(item)] = item
        self.rcu += result.consumed_rcu
        self.requests += result.requests
        return found

    def _judge(self, write: Write, stored: Item | None) -> None:
        problem: str | None = None
        if write.delete:
            problem = None if stored is None else "not deleted"
        elif stored is None:
            problem = "missing"
        elif self._compare and not same_item(write.request["PutRequest"]["Item"], stored):
            problem = "different"
        if problem is None:
            self.problems.pop(write.key, None)
        else:
            self.problems[write.key] = {
                "seq": write.seq,
                "source": write.source,
                "line": write.line,
                "key": list(write.key[1:]),
                "problem": problem,
            }


@dataclass(frozen=True, slots=True)
class GetResult:
    """What `get_items` read: items per table, capacity, and the calls it took."""

    items: list[tuple[str, Item]]
    consumed_rcu: float
    requests: int


async def get_items(
    request: dict[str, Any],
    client: Any,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    patience_s: float = 900.0,
) -> GetResult:
    """Read the keys of a `batch-get-item --request-items` file: any number of keys, 100
    a call, `UnprocessedKeys` and throttled calls retried with full-jitter backoff.

    Raises:
        ConfigError: the request is not shaped like the AWS CLI's file, or lists a key
            twice, or DynamoDB refuses it.
        RetriesExhausted: DynamoDB answered no read for `patience_s`.
    """
    clock = clock or SystemClock()
    backoff = read_backoff(rng or random.Random())
    pending: list[tuple[str, Any]] = []
    options: dict[str, dict[str, Any]] = {}
    if not isinstance(request, dict):
        raise ConfigError('A batch-get request file is an object: {table: {"Keys": [...]}}.')
    for table, spec in request.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("Keys"), list):
            raise ConfigError(f'Table {table!r} in the request file has no "Keys" list.')
        options[table] = {k: v for k, v in spec.items() if k != "Keys"}
        seen: set[bytes] = set()
        for number, key in enumerate(spec["Keys"], 1):
            # DynamoDB refuses a whole call for one duplicate; the file is the user's.
            canonical = orjson.dumps(key, option=orjson.OPT_SORT_KEYS)
            if canonical in seen:
                raise ConfigError(
                    f"Table {table!r} in the request file lists key {number} twice: "
                    f"{canonical.decode()}."
                )
            seen.add(canonical)
        pending += [(table, key) for key in spec["Keys"]]
    items: list[tuple[str, Item]] = []
    rcu = 0.0
    requests = 0
    for start in range(0, len(pending), MAX_GET_KEYS):
        chunk: dict[str, Any] = {}
        for table, key in pending[start : start + MAX_GET_KEYS]:
            chunk.setdefault(table, {"Keys": [], **options[table]})["Keys"].append(key)
        try:
            result = await batch_get(client, chunk, clock, backoff, patience_s)
        except RequestRejected as exc:
            raise ConfigError(f"DynamoDB refused the request file's keys: {exc}.") from None
        items += result.items
        rcu += result.consumed_rcu
        requests += result.requests
    return GetResult(items=items, consumed_rcu=rcu, requests=requests)


def read_backoff(rng: random.Random) -> Backoff:
    """A throttled read's wait. Capped at 5 s, not the writes' 1 s: `get` has no pace of
    the whole job to space its calls, only this."""
    return Backoff(cap=5.0, rng=rng)


async def batch_get(
    client: Any, request: dict[str, Any], clock: Clock, backoff: Backoff, patience_s: float
) -> GetResult:
    """One BatchGetItem request (at most 100 keys), its `UnprocessedKeys` retried with
    backoff until none are left. Reads change nothing, so a throttled or unavailable
    table is waited for: given up on only when no read came back for `patience_s`.

    Raises:
        RetriesExhausted: DynamoDB answered no read for `patience_s` (--give-up-after).
        RequestRejected: DynamoDB refused the request for what it holds.
    """
    items: list[tuple[str, Item]] = []
    rcu = 0.0
    attempt = failures = 0
    progress = clock.now()
    while request:
        if failures and clock.now() - progress > patience_s:
            raise RetriesExhausted(
                f"DynamoDB returned none of {sum(len(s['Keys']) for s in request.values())} "
                f"keys for {clock.now() - progress:.0f} s (--give-up-after)",
                operations=list(request.items()),
                attempts=attempt,
            )
        if attempt:
            await clock.sleep(backoff.delay(failures + 1))
        attempt += 1
        try:
            response = await client.batch_get_item(request)
        except TransientError:
            failures += 1
            continue
        responses = response.get("Responses", {})
        for table, found in responses.items():
            items += [(table, item) for item in found]
        rcu += sum(c.get("CapacityUnits", 0.0) for c in response.get("ConsumedCapacity") or ())
        left = response.get("UnprocessedKeys") or {}
        if any(responses.values()) or not left:
            progress, failures = clock.now(), 0
        else:
            failures += 1  # all held back: throttled
        request = left
    return GetResult(items=items, consumed_rcu=rcu, requests=attempt)
