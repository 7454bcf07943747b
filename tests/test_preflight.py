"""Before anything is read or written: a table name DynamoDB would refuse, a table still
being created, a describe DynamoDB refuses. Each is one sentence or a wait, never a
traceback or a write into a table that cannot take it."""

from __future__ import annotations

from typing import Any

import pytest

from loader import preflight
from loader.config import LoadConfig
from loader.errors import ConfigError, RequestRejected
from tests.fakes import FakeClock, FakeDynamo


class Creating(FakeDynamo):
    """A table that says CREATING for its first `describes` DescribeTable calls."""

    def __init__(self, describes: int, *, refuse: bool = False) -> None:
        super().__init__(FakeClock())
        self.describes = describes
        self.refuse = refuse
        self.described = 0

    async def describe_table(self, table: str) -> dict[str, Any]:
        self.described += 1
        if self.refuse:
            raise RequestRejected(
                "ValidationException: 1 validation error", code="ValidationException"
            )
        answer = await super().describe_table(table)
        answer["Table"]["TableStatus"] = (
            "CREATING" if self.described <= self.describes else "ACTIVE"
        )
        return answer


def job(table: str) -> LoadConfig:
    return LoadConfig(sources=("in.jsonl",), table=table)


@pytest.mark.parametrize("name", ["t", "ab", "x" * 256, "my table", "prod/items", "é-table"])
async def test_a_name_dynamodb_refuses_is_one_sentence_before_any_call(name: str) -> None:
    client = Creating(0)
    with pytest.raises(ConfigError, match="cannot be a DynamoDB table name"):
        await preflight.preflight(client, job(name), [("in.jsonl", "jsonl")])
    assert client.described == 0


@pytest.mark.parametrize(
    "name",
    [
        "abc",
        "Products_2026.v1-x",
        "x" * 255,
        "arn:aws:dynamodb:eu-west-1:123456789012:table/products",
    ],
)
async def test_names_and_arns_dynamodb_takes_pass(name: str) -> None:
    schemas = await preflight.preflight(Creating(0), job(name), [("in.jsonl", "jsonl")])
    assert schemas[name].hash_name == "PK"


async def test_a_table_still_being_created_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "ACTIVE_POLL_S", 0.0)
    client = Creating(3)
    await preflight.preflight(client, job("products"), [("in.jsonl", "jsonl")])
    assert client.described == 4


async def test_a_table_that_stays_creating_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "ACTIVE_POLL_S", 0.0)
    monkeypatch.setattr(preflight, "ACTIVE_WAIT_S", 0.0)
    with pytest.raises(ConfigError, match="still being created"):
        await preflight.preflight(Creating(10**6), job("products"), [("in.jsonl", "jsonl")])


async def test_a_describe_dynamodb_refuses_is_one_sentence() -> None:
    with pytest.raises(ConfigError, match="refused to describe table 'products'"):
        await preflight.preflight(
            Creating(0, refuse=True), job("products"), [("in.jsonl", "jsonl")]
        )
