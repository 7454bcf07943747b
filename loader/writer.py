"""The worker: sends batches, resends `UnprocessedItems` after its own backoff, retries
transient errors, and bisects a batch DynamoDB refuses so only bad items are rejected."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from loader.backoff import Backoff, Clock, RateLimiter
from loader.batcher import BatchQueue, batches
from loader.client import DynamoClient, RequestRejected, TransientError
from loader.codec import KeySchema, Write
from loader.metrics import Metrics


class Outcomes(Protocol):
    """Where a worker reports what became of each write."""

    def written(self, writes: list[Write]) -> None: ...

    def rejected(self, writes: list[Write], reason: str) -> None: ...


class Writer:
    """Shared by the job's workers; each `send` call is one worker's batch."""

    def __init__(
        self,
        *,
        client: DynamoClient,
        schemas: dict[str, KeySchema],
        outcomes: Outcomes,
        metrics: Metrics,
        limiter: RateLimiter,
        backoff: Backoff,
        clock: Clock,
        max_retries: int,
    ) -> None:
        self._client = client
        self._schemas = schemas
        self._outcomes = outcomes
        self._metrics = metrics
        self._limiter = limiter
        self._backoff = backoff
        self._clock = clock
        self._max_retries = max_retries

    async def run(self, queue: BatchQueue) -> None:
        """One worker: take batches until the reader's end marker."""
        async for batch in batches(queue):
            await self.send(batch)

    async def send(self, batch: list[Write]) -> None:
        """Send until every write is written or rejected; never raises for a bad item."""
        pending = batch
        attempt = 0
        last_error = ""
        while pending:
            if attempt > self._max_retries:
                reason = f"gave up after {attempt} attempts: {last_error}"
                self._metrics.gave_up += len(pending)
                self._outcomes.rejected(pending, reason)
                return
            if attempt:
                await self._clock.sleep(self._backoff.delay(attempt))
            attempt += 1
            estimated = sum(w.wcu for w in pending)
            await self._limiter.acquire(estimated)
            started = self._clock.now()
            try:
                response = await self._client.batch_write_item(_request_items(pending))
            except TransientError as exc:
                self._metrics.on_error(throttled=exc.throttled)
                self._limiter.settle(
                    taken=estimated,
                    consumed=0.0,
                    throttled=exc.throttled,
                    refused=estimated if exc.throttled else 0.0,
                )
                last_error = str(exc)
                continue
            except RequestRejected as exc:
                self._limiter.settle(taken=estimated, consumed=0.0, throttled=False)
                self._metrics.on_error(throttled=False)
                await self._bisect(pending, str(exc))
                return
            pending, last_error = self._settle(pending, response, started, estimated)

    def _settle(
        self, pending: list[Write], response: dict[str, Any], started: float, estimated: int
    ) -> tuple[list[Write], str]:
        left = self._unprocessed(pending, response.get("UnprocessedItems") or {})
        done = [w for w in pending if w not in left] if left else pending
        capacity = response.get("ConsumedCapacity")
        consumed = sum(c.get("CapacityUnits", 0.0) for c in capacity or ())
        # A server that reports no capacity (moto, proxies): pace by our own estimate.
        accepted = consumed if capacity else float(sum(w.wcu for w in done))
        deletes = sum(1 for w in done if w.delete)
        now = self._clock.now()
        self._metrics.on_response(
            now=now,
            latency_s=now - started,
            puts=len(done) - deletes,
            deletes=deletes,
            wcu=consumed,
            estimated=sum(w.wcu for w in done),
            unprocessed=len(left),
        )
        self._limiter.settle(
            taken=estimated,
            consumed=accepted,
            throttled=bool(left),
            refused=float(sum(w.wcu for w in left)),
        )
        if done:
            self._outcomes.written(done)
        return left, f"{len(left)} items still unprocessed (throttled)"

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

    def __init__(self, *, outcomes: Outcomes, metrics: Metrics) -> None:
        self._outcomes = outcomes
        self._metrics = metrics

    async def run(self, queue: BatchQueue) -> None:
        async for batch in batches(queue):
            self._metrics.requests += 1
            self._metrics.estimated_wcu += sum(w.wcu for w in batch)
            self._outcomes.written(batch)
