"""Tests for the fault-injecting proxy against a real DynamoDB Local.

The proxy is only useful if its faults are faithful, so each case checks both
what the client saw and what actually landed in the upstream table.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from tests.conftest import TableFactory
from tests.ddb_local import DynamoDBLocal
from tests.faultproxy import FaultConfig, FaultProxy

CONNECTION_ERRORS = (ConnectionClosedError, EndpointConnectionError)
ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/"
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


Raw = tuple[int, dict[str, str], bytes]


def raw(url: str, op: str, payload: dict[str, Any]) -> Raw:
    """One signed DynamoDB call over plain HTTP: status, headers (lower-case) and the
    body exactly as the proxy sent them, which boto3 would parse away or reject."""
    body = json.dumps(payload).encode()
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=body,
        headers={
            "X-Amz-Target": f"DynamoDB_20120810.{op}",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    SigV4Auth(Credentials("test", "test"), "dynamodb", "us-east-1").add_auth(request)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("POST", "/", body=body, headers=dict(request.headers.items()))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_put(url: str, table: str, pk: str) -> Raw:
    return raw(url, "PutItem", {"TableName": table, "Item": item(pk)})


def raw_batch(url: str, table: str, *pks: str) -> Raw:
    return raw(url, "BatchWriteItem", {"RequestItems": {table: puts([item(p) for p in pks])}})


def wait_for(t0: float, at_s: float) -> None:
    """Sleep until `at_s` seconds after `t0` (a config's assignment)."""
    time.sleep(max(0.0, t0 + at_s - time.monotonic()))


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


def test_refuse_fraction_hands_back_a_share_of_every_batch(
    via: Any, direct: Any, table: str, proxy: FaultProxy
) -> None:
    proxy.config = FaultConfig(refuse_fraction=0.3, seed=5)
    sent: list[dict[str, Any]] = []
    back: list[dict[str, Any]] = []
    counts = []
    for batch in range(8):  # back to back: the refusal does not wait for a high rate
        reqs = puts([item(f"r{batch}-{i}") for i in range(25)])
        resp = via.batch_write_item(RequestItems={table: reqs})
        refused = resp["UnprocessedItems"].get(table, [])
        assert all(r in reqs for r in refused)
        counts.append(len(refused))
        sent += reqs
        back += refused
    assert set(counts) == {7, 8}  # 0.3 of 25, rounded either way
    landed = {(r["PutRequest"]["Item"]["PK"]["S"], "0") for r in sent if r not in back}
    assert keys_in(direct, table) == landed  # refused items never went upstream
    stats = proxy.stats()
    assert (stats.refused_items, stats.throttled_items, stats.forwarded) == (len(back), 0, 8)
    proxy.config = FaultConfig(refuse_fraction=1.0)
    reqs = puts([item("all-1"), item("all-2")])
    assert via.batch_write_item(RequestItems={table: reqs})["UnprocessedItems"] == {table: reqs}
    via.put_item(TableName=table, Item=item("single"))  # only BatchWriteItem is refused
    assert ("single", "0") in keys_in(direct, table)
    assert ("all-1", "0") not in keys_in(direct, table)


def test_hot_key_has_its_own_budget(
    via: Any, direct: Any, table: str, proxy: FaultProxy, make_table: TableFactory
) -> None:
    proxy.config = FaultConfig(hot_key="hot", key_wcu_per_s=2, throttling_reasons=True)
    hot = [item("hot", f"h{i}") for i in range(4)]
    reqs = puts(hot[:2] + [item("cold", f"c{i}") for i in range(3)] + hot[2:])
    resp = via.batch_write_item(RequestItems={table: reqs})
    assert resp["UnprocessedItems"] == {table: puts(hot[2:])}  # no reasons in a batch
    status, _, body = raw_put(proxy.url, table, "hot")
    error = json.loads(body)
    assert status == 400
    assert error["__type"].endswith("#ProvisionedThroughputExceededException")
    assert error["ThrottlingReasons"] == [
        {"reason": "TableWriteKeyRangeThroughputExceeded", "resource": ARN + table}
    ]
    via.put_item(TableName=table, Item=item("cold", "late"))  # other keys pass
    assert keys_in(direct, table) == {("hot", "h0"), ("hot", "h1")} | {
        ("cold", sk) for sk in ("c0", "c1", "c2", "late")
    }
    stats = proxy.stats()
    assert (stats.hot_key_items, stats.throttled_items, stats.throttled_requests) == (3, 3, 1)
    numbers = make_table(keys=(("id", "N"),), gsi=False)  # the N string is matched too
    proxy.config = FaultConfig(hot_key="7", key_wcu_per_s=1)
    via.put_item(TableName=numbers, Item={"id": {"N": "7"}, "v": {"S": "a"}})
    with pytest.raises(ClientError) as err:
        via.put_item(TableName=numbers, Item={"id": {"N": "7"}, "v": {"S": "b"}})
    assert err.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    via.put_item(TableName=numbers, Item={"id": {"N": "8"}})


def test_table_wcu_schedule_lowers_the_budget(
    via: Any, direct: Any, table: str, proxy: FaultProxy
) -> None:
    proxy.config = FaultConfig(table_wcu_per_s=1000, table_wcu_schedule=((0, 5), (1.0, 2)))
    t0 = time.monotonic()
    first = puts([item(f"a{i}") for i in range(8)])
    resp = via.batch_write_item(RequestItems={table: first})
    assert time.monotonic() - t0 < 1.0, "too slow to land in the first step"
    assert resp["UnprocessedItems"] == {table: first[5:]}  # 5 WCU/s, not 1000
    wait_for(t0, 1.5)  # in the second step, and a full second of its 2 WCU/s since
    second = puts([item(f"b{i}") for i in range(8)])
    resp = via.batch_write_item(RequestItems={table: second})
    assert resp["UnprocessedItems"] == {table: second[2:]}
    assert proxy.stats().throttled_items == 3 + 6


def status_of(fn: Any, *args: Any) -> tuple[int | None, Raw | None]:
    """A raw call's status and answer; (None, None) for a connection closed unanswered."""
    try:
        answer: Raw = fn(*args)
    except ConnectionError:  # RemoteDisconnected or ECONNRESET: the proxy closed on us
        return None, None
    return answer[0], answer


@pytest.mark.parametrize(
    ("kind", "expected"), [("503", 503), ("reset", None), ("html", 502)], ids=str
)
def test_outage_windows(
    via: Any, direct: Any, table: str, proxy: FaultProxy, kind: str, expected: int | None
) -> None:
    proxy.config = FaultConfig(outages=((0, 0.8), (1.6, 60)), outage_kind=kind)
    t0 = time.monotonic()
    get = {"RequestItems": {table: {"Keys": [{"PK": {"S": "x"}, "SK": {"S": "0"}}]}}}
    during = [
        status_of(raw_put, proxy.url, table, "early"),
        status_of(raw, proxy.url, "BatchGetItem", get),
    ]
    assert time.monotonic() - t0 < 0.8, "too slow to land in the first window"
    assert via.describe_table(TableName=table)["Table"]["TableName"] == table  # not faulty
    for status, answer in during:
        assert status == expected
        if answer is None:
            continue
        _, headers, body = answer
        if kind == "503":
            assert headers["content-type"] == "application/x-amz-json-1.0"
            assert json.loads(body)["__type"].endswith("#ServiceUnavailable")
        else:  # a load balancer's page
            assert headers["content-type"].startswith("text/html")
            assert b"502 Bad Gateway" in body
    wait_for(t0, 1.0)
    assert status_of(raw_put, proxy.url, table, "between")[0] == 200
    wait_for(t0, 1.8)
    assert status_of(raw_put, proxy.url, table, "late")[0] == expected
    assert keys_in(direct, table) == {("between", "0")}
    stats = proxy.stats()
    assert getattr(stats, f"outages_{kind}") == 3
    assert stats.forwarded == 2  # DescribeTable and the put between the windows


def test_table_still_creating(via: Any, direct: Any, table: str, proxy: FaultProxy) -> None:
    proxy.config = FaultConfig(creating_for_s=1.0)
    t0 = time.monotonic()
    described = via.describe_table(TableName=table)["Table"]
    assert (described["TableStatus"], described["TableName"]) == ("CREATING", table)
    assert described["KeySchema"][0] == {"AttributeName": "PK", "KeyType": "HASH"}
    for write in (
        lambda: via.put_item(TableName=table, Item=item("a")),
        lambda: via.batch_write_item(RequestItems={table: puts([item("b")])}),
    ):
        with pytest.raises(ClientError) as err:
            write()
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert err.value.response["Error"]["Message"] == "Requested resource not found"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert time.monotonic() - t0 < 1.0, "too slow to land while creating"
    assert keys_in(direct, table) == set()
    wait_for(t0, 1.1)
    assert via.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
    via.put_item(TableName=table, Item=item("c"))
    assert keys_in(direct, table) == {("c", "0")}
    stats = proxy.stats()
    assert (stats.creating_describes, stats.creating_refusals, stats.forwarded) == (1, 2, 3)


@pytest.mark.parametrize(
    ("config", "status", "content_type", "counter"),
    [
        (FaultConfig(p_409=1.0), 409, "application/x-amz-json-1.0", "errors_409"),
        (FaultConfig(p_429=1.0), 429, "text/plain", "errors_429"),
        (FaultConfig(p_html_400=1.0), 400, "text/html", "errors_html_400"),
    ],
    ids=["409", "429", "html-400"],
)
def test_errors_from_in_front_of_the_table(
    via: Any,
    direct: Any,
    table: str,
    proxy: FaultProxy,
    config: FaultConfig,
    status: int,
    content_type: str,
    counter: str,
) -> None:
    proxy.config = config
    for answer in (raw_put(proxy.url, table, "a"), raw_batch(proxy.url, table, "b", "c")):
        got_status, headers, body = answer
        assert got_status == status
        assert headers["content-type"].startswith(content_type)
        if status == 409:
            assert json.loads(body)["__type"].endswith("#ReplicatedWriteConflictException")
            continue
        assert "x-amz-crc32" not in headers  # a gateway's answer, not DynamoDB's
        if status == 429:
            assert body == b"Too Many Requests"
        else:
            assert body.startswith(b"<!DOCTYPE html>")
    assert keys_in(direct, table) == set()
    stats = proxy.stats()
    assert (getattr(stats, counter), stats.forwarded) == (2, 0)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (
            FaultConfig(table_wcu_per_s=1, throttling_reasons=True),
            "TableWriteProvisionedThroughputExceeded",
        ),
        (
            FaultConfig(
                table_wcu_per_s=1, throttle_error="ThrottlingException", throttling_reasons=True
            ),
            "TableWriteMaxOnDemandThroughputExceeded",
        ),
        (
            FaultConfig(partition_wcu_per_s=1, throttling_reasons=True),
            "TableWriteKeyRangeThroughputExceeded",
        ),
        (FaultConfig(table_wcu_per_s=1), None),
    ],
    ids=["table", "on-demand", "partition", "off"],
)
def test_throttling_reasons(
    via: Any, table: str, proxy: FaultProxy, config: FaultConfig, reason: str | None
) -> None:
    proxy.config = config
    assert raw_batch(proxy.url, table, "first")[0] == 200  # spends the one token
    for status, _, body in (raw_put(proxy.url, table, "x"), raw_batch(proxy.url, table, "y")):
        error = json.loads(body)
        assert status == 400
        assert error["__type"].endswith("#" + config.throttle_error)
        if reason is None:
            assert "ThrottlingReasons" not in error
        else:
            assert error["ThrottlingReasons"] == [{"reason": reason, "resource": ARN + table}]
    assert proxy.stats().throttled_requests == 2


@pytest.mark.parametrize(
    ("config", "counter"),
    [(FaultConfig(p_bad_json_200=1.0), "bad_json_200"), (FaultConfig(p_bad_crc=1.0), "bad_crc")],
    ids=["cut-body", "bad-crc"],
)
def test_corrupt_200_after_the_write(
    via: Any, direct: Any, table: str, proxy: FaultProxy, config: FaultConfig, counter: str
) -> None:
    proxy.config = config
    status, headers, body = raw_batch(proxy.url, table, "a", "b")
    assert status == 200
    if counter == "bad_json_200":
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)
        assert headers["x-amz-crc32"] == str(zlib.crc32(body))  # the cut body's own CRC
    else:
        assert headers["x-amz-crc32"] == "abc"
        assert json.loads(body) == {"UnprocessedItems": {}}
    assert keys_in(direct, table) == {("a", "0"), ("b", "0")}  # forwarded: it landed
    stats = proxy.stats()
    assert (stats.forwarded, getattr(stats, counter)) == (1, 1)


def test_unknown_outage_kind_is_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="outage_kind"):
        proxy.config = FaultConfig(outages=((0, 1),), outage_kind="timeout")
