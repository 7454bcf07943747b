"""Test doubles at the loader's two seams: the clock and the DynamoDB client."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from typing import Any

from loader.errors import RequestRejected, TransientError


class FakeClock:
    """Time that moves only when someone sleeps (or the test sets `t`); every sleep is
    recorded, with the name of the task that slept."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []
        self.sleepers: list[str] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        self.sleeps.append(seconds)
        self.sleepers.append(task.get_name() if task else "?")
        self.t += seconds
        await asyncio.sleep(0)


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return item["PK"]["S"], item["SK"]["S"]


class FakeDynamo:
    """A PK/SK table in memory that throttles by chance: whole requests (a throttling
    error) and parts of them (UnprocessedItems). It never applies a write it reports
    unprocessed, so each applied write is counted exactly once."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        seed: int = 0,
        p_throttle: float = 0.0,
        p_unprocessed: float = 0.0,
        poison: str | None = None,
        always_unprocessed: str | None = None,
        refuse_first: dict[str, int] | None = None,
        latency_s: float = 0.0,
        outage: tuple[float, float] | None = None,
    ) -> None:
        self.clock = clock
        self.outage = outage  # from, until (clock times): every call fails with a 503
        self.outage_calls = 0
        self.rng = random.Random(seed)
        self.p_throttle = p_throttle
        self.p_unprocessed = p_unprocessed
        self.poison = poison
        self.always_unprocessed = always_unprocessed
        self.latency_s = latency_s  # fake time each call takes (else time passes only in sleeps)
        self.refuse_first = dict(refuse_first or {})  # PK -> sends to refuse before taking it
        self.calls: list[list[tuple[str, str]]] = []  # the keys of each call, in order
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.applied: Counter[tuple[str, str]] = Counter()
        self.returned_at: dict[tuple[str, str], float] = {}
        self.resent_after: list[float] = []
        self.calls_by_task: defaultdict[str, int] = defaultdict(int)

    async def describe_table(self, table: str) -> dict[str, Any]:
        return {
            "Table": {
                "KeySchema": [
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
            }
        }

    async def create_table(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("not used")

    async def batch_get_item(self, request_items: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("not used")

    async def batch_write_item(self, request_items: dict[str, list[Any]]) -> dict[str, Any]:
        self.clock.t += self.latency_s
        await asyncio.sleep(0)
        task = asyncio.current_task()
        self.calls_by_task[task.get_name() if task else "?"] += 1
        ((table, requests),) = request_items.items()
        assert len(requests) <= 25
        keys = [_key(r["PutRequest"]["Item"]) for r in requests]
        assert len(set(keys)) == len(keys), "duplicate keys in one batch"
        if self.outage and self.outage[0] <= self.clock.now() < self.outage[1]:
            self.outage_calls += 1
            raise TransientError("ServiceUnavailable (503)", throttled=False, status=503)
        self.calls.append(keys)
        for key in keys:
            if key in self.returned_at:
                self.resent_after.append(self.clock.now() - self.returned_at.pop(key))
        if self.poison and any(self.poison in r["PutRequest"]["Item"] for r in requests):
            raise RequestRejected("ValidationException: poisoned item")
        if self.rng.random() < self.p_throttle:
            for key in keys:
                self.returned_at[key] = self.clock.now()
            raise TransientError(
                "ProvisionedThroughputExceededException: slow down", throttled=True
            )
        unprocessed = []
        for request, key in zip(requests, keys, strict=True):
            item = request["PutRequest"]["Item"]
            refuse = self.refuse_first.get(key[0], 0)
            if refuse:
                self.refuse_first[key[0]] = refuse - 1
            if (
                refuse
                or key[0] == self.always_unprocessed
                or self.rng.random() < self.p_unprocessed
            ):
                unprocessed.append(request)
                self.returned_at[key] = self.clock.now()
            else:
                self.items[key] = item
                self.applied[key] += 1
        response: dict[str, Any] = {
            "ConsumedCapacity": [
                {"TableName": table, "CapacityUnits": float(len(requests) - len(unprocessed))}
            ]
        }
        if unprocessed:
            response["UnprocessedItems"] = {table: unprocessed}
        return response
