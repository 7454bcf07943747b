"""The worker: sends batches, resends `UnprocessedItems` after its own backoff, retries
transient errors (waiting out an outage with `Health`), and bisects a batch DynamoDB
refuses so only bad items are rejected."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from loader.backoff import Backoff, Clock
from loader.batcher import Dispatch, batches
from loader.client import DynamoClient
from loader.codec import KeySchema, Write
from loader.errors import RequestRejected, TransientError
from loader.health import Health
from loader.metrics import Subscriber
from loader.pacing import Pacer


class Outcomes(Protocol):
    """Where a worker reports what became of each write."""

    def written(self, writes: list[Write]) -> None: ...

    def rejected(self, writes: list[Write], reason: str) -> None: ...

    def exhausted(self, write: Write, reason: str) -> None: ...


class Writer:
    """Shared by the job's workers; each `send` call is one worker's batch."""

    def __init__(
        self,
        *,
        client: DynamoClient,
        schemas: dict[str, KeySchema],
        outcomes: Outcomes,
        events: Subscriber,
        pacer: Pacer,
        backoff: Backoff,
        clock: Clock,
        max_retries: int,
        health: Health,
    ) -> None:
        self._client = client
        self._schemas = schemas
        self._outcomes = outcomes
        self._events = events
        self._pacer = pacer
        self._backoff = backoff
        self._clock = clock
        self._max_retries = max_retries
        self._health = health
        # Failed sends so far of each write that is back in the dispatch for a retry
        # (its backoff), and of those the ones in a row with nothing else written
        # between them (its strikes: what --max-retries counts).
        self._attempts: dict[int, int] = {}
        self._strikes: dict[int, tuple[int, int]] = {}  # seq: (strikes, written when struck)
        self._written = 0  # writes this job has had acknowledged
        self._dispatch: Dispatch

    async def run(self, dispatch: Dispatch) -> None:
        """One worker: take batches until everything is through."""
        self._dispatch = dispatch
        async for batch in batches(dispatch):
            await self.send(batch)

    async def send(self, batch: list[Write]) -> None:
        """Send once. What is written or rejected is reported; what DynamoDB did not take
        goes back to the dispatch to be resent after its backoff, so the worker is free
        for other keys meanwhile. Never raises for a bad item."""
        estimated = sum(w.wcu for w in batch)
        probe = await self._health.admit()
        await self._pacer.acquire(estimated)
        started = self._clock.now()
        try:
            response = await self._client.batch_write_item(_request_items(batch))
        except TransientError as exc:
            self._events.on_error(throttled=exc.throttled, reasons=exc.reasons)
            if exc.throttled:
                self._health.answered()
            else:
                self._health.failed(probe)
            refused = estimated if exc.throttled else 0.0
            self._pacer.settle(
                taken=estimated,
                consumed=0.0,
                refused=refused,
                key_range=refused if exc.key_range else 0.0,
            )
            # Through an outage, writes wait for DynamoDB, not for their retries to run out.
            self._again(batch, str(exc), spend=not self._health.down)
            return
        except RequestRejected as exc:
            self._health.answered()
            self._pacer.settle(taken=estimated, consumed=0.0)
            self._events.on_error(throttled=False)
            await self._bisect(batch, str(exc))
            return
        self._health.answered()
        left = self._settle(batch, response, started, estimated)
        if left:
            self._again(left, f"{len(left)} items still unprocessed (throttled)")

    def _again(self, writes: list[Write], reason: str, *, spend: bool = True) -> None:
        """Back to the dispatch with a full-jitter backoff by their attempts so far.

        Past --max-retries refusals in a row with nothing else written between them,
        the job stops (DynamoDB kept refusing: no fault of the record's). A refusal
        while other writes go through (a hot key, refusals at any rate) is no strike:
        the table is working, and this write's turn comes; giving up then would stop a
        migration that is making progress (--give-up-after covers a table that takes
        nothing at all).
        """
        attempts, strikes = self._attempts, self._strikes
        retry: list[Write] = []
        most = 0
        for write in writes:
            failed = attempts.get(write.seq, 0) + spend
            struck, when = strikes.get(write.seq, (0, -1))
            if spend:
                struck = struck + 1 if when == self._written else 1
            if struck > self._max_retries:
                attempts.pop(write.seq, None)
                strikes.pop(write.seq, None)
                self._outcomes.exhausted(
                    write,
                    f"DynamoDB refused {write.source} line {write.line:,} "
                    f"{struck} time{'s' * (struck > 1)} in a row "
                    f"({reason}; --max-retries {self._max_retries})",
                )
            else:
                attempts[write.seq] = failed
                strikes[write.seq] = (struck, self._written)
                retry.append(write)
                most = max(most, failed)
        if retry:
            self._dispatch.retry(retry, self._clock.now() + self._backoff.delay(most))

    def _settle(
        self, pending: list[Write], response: dict[str, Any], started: float, estimated: int
    ) -> list[Write]:
        left = self._unprocessed(pending, response.get("UnprocessedItems") or {})
        done = [w for w in pending if w not in left] if left else pending
        capacity = response.get("ConsumedCapacity")
        consumed = sum(c.get("CapacityUnits", 0.0) for c in capacity or ())
        # A server that reports no capacity (moto, proxies): pace by our own estimate.
        accepted = consumed if capacity else float(sum(w.wcu for w in done))
        deletes = sum(1 for w in done if w.delete)
        now = self._clock.now()
        self._events.on_response(
            now=now,
            latency_s=now - started,
            puts=len(done) - deletes,
            deletes=deletes,
            wcu=consumed,
            estimated=sum(w.wcu for w in done),
            unprocessed=len(left),
        )
        self._pacer.settle(
            taken=estimated,
            consumed=accepted,
            refused=float(sum(w.wcu for w in left)),
        )
        if done:
            self._written += len(done)
            if self._attempts:
                for write in done:
                    self._attempts.pop(write.seq, None)
                    self._strikes.pop(write.seq, None)
            self._outcomes.written(done)
        return left

    def _unprocessed(self, pending: list[Write], unprocessed: dict[str, Any]) -> list[Write]:
        if not unprocessed:
            return []
        by_key = {w.key: w for w in pending}
        left = []
        for table, requests in unprocessed.items():
            schema = self._schemas[table]
            for request in requests:
                body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
                left.append(by_key[schema.key_of(body)])
        # Input order within the retry keeps the rejects file and checkpoints readable.
        left.sort(key=lambda w: w.seq)
        return left

    async def _bisect(self, writes: list[Write], reason: str) -> None:
        if len(writes) == 1:
            self._attempts.pop(writes[0].seq, None)
            self._strikes.pop(writes[0].seq, None)
            self._outcomes.rejected(writes, f"DynamoDB refused it: {reason}")
            return
        middle = len(writes) // 2
        await self.send(writes[:middle])
        await self.send(writes[middle:])


def _request_items(writes: list[Write]) -> dict[str, list[Any]]:
    if len({w.table for w in writes}) == 1:
        return {writes[0].table: [w.request for w in writes]}
    grouped: dict[str, list[Any]] = defaultdict(list)
    for write in writes:
        grouped[write.table].append(write.request)
    return dict(grouped)


class DryRun:
    """Stands in for the workers under `--dry-run`: every batch is counted as the request
    it would be, and finished at once, so ordering and accounting run as for real."""

    def __init__(self, *, outcomes: Outcomes, events: Subscriber) -> None:
        self._outcomes = outcomes
        self._events = events

    async def run(self, dispatch: Dispatch) -> None:
        async for batch in batches(dispatch):
            self._events.on_dry_run(estimated=sum(w.wcu for w in batch))
            self._outcomes.written(batch)
