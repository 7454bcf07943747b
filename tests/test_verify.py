"""Reading back: throttled reads are waited for (they change nothing), never reported as
missing items; a read DynamoDB keeps refusing past --give-up-after stops the check short;
a request file's mistakes are one sentence."""

from __future__ import annotations

import random
from typing import Any

import pytest

from loader.errors import ConfigError, RetriesExhausted, TransientError
from loader.verify import batch_get, get_items, read_backoff
from tests.fakes import FakeClock


class Reads:
    """BatchGetItem over a dict of items: throttled until `until` (clock time); then
    at most `per_call` keys answered a call, the rest UnprocessedKeys."""

    def __init__(self, clock: FakeClock, until: float, per_call: int = 100) -> None:
        self.clock = clock
        self.until = until
        self.per_call = per_call
        self.calls = 0

    async def batch_get_item(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.clock.now() < self.until:
            raise TransientError("ProvisionedThroughputExceededException", throttled=True)
        ((table, spec),) = request.items()
        keys = spec["Keys"]
        answered, left = keys[: self.per_call], keys[self.per_call :]
        response: dict[str, Any] = {"Responses": {table: [dict(k, v={"N": "1"}) for k in answered]}}
        if left:
            response["UnprocessedKeys"] = {table: {**spec, "Keys": left}}
        return response


def keys(n: int) -> list[dict[str, Any]]:
    return [{"PK": {"S": f"P#{i}"}} for i in range(n)]


async def test_thirty_seconds_of_read_throttling_are_waited_out() -> None:
    clock = FakeClock()
    client = Reads(clock, until=clock.now() + 30, per_call=40)
    result = await batch_get(
        client, {"t1": {"Keys": keys(100)}}, clock, read_backoff(random.Random(1)), 900.0
    )
    assert sorted(item["PK"]["S"] for _, item in result.items) == sorted(
        f"P#{i}" for i in range(100)
    )
    # Backing off, not hammering: capped at 5 s a wait, about a dozen calls for 30 s.
    assert client.calls < 40


async def test_reads_refused_past_the_patience_stop_with_a_sentence() -> None:
    clock = FakeClock()
    client = Reads(clock, until=float("inf"))
    with pytest.raises(RetriesExhausted, match="none of 100 keys for"):
        await batch_get(
            client, {"t1": {"Keys": keys(100)}}, clock, read_backoff(random.Random(1)), 120.0
        )
    assert clock.now() - 1000.0 >= 120


async def test_a_get_request_file_with_a_key_twice_is_refused_before_any_read() -> None:
    clock = FakeClock()
    client = Reads(clock, until=0)
    twice = {
        "products": {
            "Keys": [{"PK": {"S": "a"}, "SK": {"S": "1"}}, {"SK": {"S": "1"}, "PK": {"S": "a"}}]
        }
    }
    with pytest.raises(ConfigError, match="lists key 2 twice"):
        await get_items(twice, client, clock=clock)
    assert client.calls == 0
