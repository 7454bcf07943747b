"""Tests for the fault-injecting proxy against a real DynamoDB Local.

The proxy is only useful if its faults are faithful, so each case checks both
what the client saw and what actually landed in the upstream table.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from tests.ddb_local import DynamoDBLocal
from tests.faultproxy import FaultConfig, FaultProxy

CONNECTION_ERRORS = (ConnectionClosedError, EndpointConnectionError)
pytestmark = pytest.mark.integration


def _client(url: str, **config: Any) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(
            retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10, **config
        ),
    )


@pytest.fixture(scope="module")
def ddb_url(ddb_local: DynamoDBLocal) -> str:
    return ddb_local.url


@pytest.fixture(scope="module")
def proxy(ddb_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(ddb_url) as p:
        yield p


@pytest.fixture
def direct(ddb_url: str) -> Iterator[Any]:
    client = _client(ddb_url)
    yield client
    client.close()


@pytest.fixture
def via(proxy: FaultProxy) -> Iterator[Any]:
    proxy.config = FaultConfig()
    proxy.reset_stats()
    client = _client(proxy.url, max_pool_connections=64)
    yield client
    client.close()


@pytest.fixture
def table(direct: Any) -> Iterator[str]:
    name = f"fp-{uuid.uuid4().hex[:8]}"
    direct.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
    )
    yield name
    direct.delete_table(TableName=name)


def item(pk: str, sk: str = "0") -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}, "v": {"N": "1"}}


def puts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"PutRequest": {"Item": i}} for i in items]


def keys_in(direct: Any, table: str) -> set[tuple[str, str]]:
    rows = direct.scan(TableName=table, ConsistentRead=True)["Items"]
    return {(r["PK"]["S"], r["SK"]["S"]) for r in rows}


def test_pass_through(via: Any, direct: Any, table: str, proxy: FaultProxy) -> None:
    via.put_item(TableName=table, Item=item("a"))
    resp = via.batch_write_item(RequestItems={table: puts([item("b"), item("c")])})
    assert resp["UnprocessedItems"] == {}
    assert direct.get_item(TableName=table, Key={"PK": {"S": "a"}, "SK": {"S": "0"}})[
        "Item"
    ] == item("a")
    assert keys_in(direct, table) == {("a", "0"), ("b", "0"), ("c", "0")}
    assert via.describe_table(TableName=table)["Table"]["TableName"] == table
    stats = proxy.stats()
    assert stats.requests == stats.forwarded == 3
    assert stats.admitted_wcu == 3
    assert sum(w for _, w in stats.admitted_per_second) == 3


def test_table_budget_returns_exactly_the_refused_items(
    via: Any, direct: Any, table: str, proxy: FaultProxy
) -> None:
    proxy.config = FaultConfig(table_wcu_per_s=3)
    reqs = puts([item(f"k{i}") for i in range(5)])
    resp = via.batch_write_item(RequestItems={table: reqs}, ReturnConsumedCapacity="TOTAL")
    assert resp["UnprocessedItems"] == {table: reqs[3:]}
    assert resp["ConsumedCapacity"][0]["CapacityUnits"] == 3  # upstream's, untouched
    assert keys_in(direct, table) == {("k0", "0"), ("k1", "0"), ("k2", "0")}
    stats = proxy.stats()
    assert (stats.throttled_items, stats.throttled_requests, stats.admitted_wcu) == (2, 0, 3)


def test_partition_budget_and_item_size(
    via: Any, direct: Any, table: str, proxy: FaultProxy
) -> None:
    proxy.config = FaultConfig(partitions=4, partition_wcu_per_s=3)
    big = item("same", "big") | {"blob": {"S": "x" * 1500}}  # 2 WCU by the JSON-size rule
    reqs = puts([big] + [item("same", f"s{i}") for i in range(3)])
    resp = via.batch_write_item(RequestItems={table: reqs})
    assert resp["UnprocessedItems"] == {table: reqs[2:]}  # 2 + 1 WCU fill the partition
    assert keys_in(direct, table) == {("same", "big"), ("same", "s0")}


def test_nothing_admitted_is_a_throttling_error(
    via: Any, direct: Any, table: str, proxy: FaultProxy
) -> None:
    proxy.config = FaultConfig(table_wcu_per_s=1)
    via.batch_write_item(RequestItems={table: puts([item("first")])})
    with pytest.raises(ClientError) as err:
        via.batch_write_item(RequestItems={table: puts([item("x"), item("y")])})
    assert err.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    proxy.config = FaultConfig(table_wcu_per_s=1, throttle_error="ThrottlingException")
    via.put_item(TableName=table, Item=item("second"))
    with pytest.raises(ClientError) as err:
        via.put_item(TableName=table, Item=item("z"))
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert keys_in(direct, table) == {("first", "0"), ("second", "0")}
    assert proxy.stats().throttled_requests == 2


def test_random_unprocessed_subset(via: Any, direct: Any, table: str, proxy: FaultProxy) -> None:
    proxy.config = FaultConfig(p_unprocessed=1.0, seed=7)
    reqs = puts([item(f"u{i}") for i in range(10)])
    resp = via.batch_write_item(RequestItems={table: reqs})
    back = resp["UnprocessedItems"].get(table, [])
    assert 1 <= len(back) <= 10
    assert all(r in reqs for r in back)
    written = {r["PutRequest"]["Item"]["PK"]["S"] for r in reqs if r not in back}
    assert keys_in(direct, table) == {(pk, "0") for pk in written}
    assert proxy.stats().unprocessed_items == len(back)


def test_500_after_write_still_lands(via: Any, direct: Any, table: str, proxy: FaultProxy) -> None:
    proxy.config = FaultConfig(p_500_after=1.0)
    with pytest.raises(ClientError) as err:
        via.put_item(TableName=table, Item=item("a"))
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert err.value.response["Error"]["Code"] == "InternalServerError"
    assert keys_in(direct, table) == {("a", "0")}


def test_500_before_write_does_not_land(
    via: Any, direct: Any, table: str, proxy: FaultProxy
) -> None:
    proxy.config = FaultConfig(p_500_before=1.0)
    with pytest.raises(ClientError) as err:
        via.batch_write_item(RequestItems={table: puts([item("a")])})
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert keys_in(direct, table) == set()
    assert proxy.stats().forwarded == 0


@pytest.mark.parametrize(
    ("config", "lands"),
    [(FaultConfig(p_drop_before=1.0), False), (FaultConfig(p_drop_after=1.0), True)],
)
def test_dropped_connection(
    via: Any, direct: Any, table: str, proxy: FaultProxy, config: FaultConfig, lands: bool
) -> None:
    proxy.config = config
    with pytest.raises(CONNECTION_ERRORS):
        via.put_item(TableName=table, Item=item("a"))
    assert keys_in(direct, table) == ({("a", "0")} if lands else set())
    # Reads are never faulted, and the client recovers on a fresh connection.
    assert via.describe_table(TableName=table)["Table"]["TableName"] == table


def test_request_limit_exceeded(via: Any, direct: Any, table: str, proxy: FaultProxy) -> None:
    proxy.config = FaultConfig(p_request_limit=1.0)
    with pytest.raises(ClientError) as err:
        via.batch_write_item(RequestItems={table: puts([item("a")])})
    assert err.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert keys_in(direct, table) == set()
    assert proxy.stats().request_limit == 1


def test_faults_are_seeded(via: Any, table: str, proxy: FaultProxy) -> None:
    def outcomes() -> list[bool]:
        proxy.config = FaultConfig(p_500_before=0.5, seed=42)
        out = []
        for i in range(12):
            with contextlib.suppress(ClientError):
                via.put_item(TableName=table, Item=item(f"s{i}"))
                out.append(True)
                continue
            out.append(False)
        return out

    first = outcomes()
    assert first == outcomes()
    assert True in first
    assert False in first


def test_concurrent_requests_with_latency(
    via: Any, direct: Any, table: str, proxy: FaultProxy
) -> None:
    proxy.config = FaultConfig(latency_s=0.3)
    started = time.monotonic()
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda i: via.put_item(TableName=table, Item=item(f"c{i}")), range(64)))
    assert time.monotonic() - started < 64 * 0.3 / 4  # in flight together, not queued
    assert len(keys_in(direct, table)) == 64
