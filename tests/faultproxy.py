"""Fault-injecting HTTP proxy in front of DynamoDB Local.

DynamoDB Local never throttles, never fails and never returns
``UnprocessedItems``, so the loader's retry and back-off paths cannot be
exercised against it directly.  This proxy adds those behaviours on top of a
real upstream so tests still check real table state.  It runs in a daemon
thread with its own event loop so that both async tests and tests that spawn
the CLI as a subprocess can point an endpoint URL at it.

Test-double approximations (documented so nobody tunes against them):

* An item's size is the length of its compact DynamoDB-JSON encoding, so
  WCU = max(1, ceil(len / 1024)); the real service counts attribute names and
  values slightly differently.
* Token buckets start full and hold one second of budget; an item costing more
  WCU than one second's budget is never admitted.
* Replacing ``proxy.config`` resets the random generator and the buckets, so
  each test case starts from a known state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

_JSON_CT = "application/x-amz-json-1.0"
_DDB = "com.amazonaws.dynamodb.v20120810#"
# Only write ops that carry items can be costed; UpdateItem's size is unknown.
_BUDGET_OPS = frozenset({"BatchWriteItem", "PutItem", "DeleteItem"})
# Setup and read-back (CreateTable, DescribeTable, Scan, GetItem...) stay
# reliable so a test's assertions never depend on luck.
_FAULT_OPS = frozenset({"BatchWriteItem", "BatchGetItem", "PutItem"})
# Hop-by-hop or recomputed headers; Accept-Encoding is forced to identity so
# upstream bodies can be parsed and rewritten without decompression.
_DROP_REQ = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding"}
)
_DROP_RESP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})

Json = dict[str, Any]


@dataclass(slots=True)
class FaultConfig:
    """What to inject; probabilities are per eligible request."""

    table_wcu_per_s: float | None = None
    partitions: int = 1
    partition_wcu_per_s: float | None = None
    throttle_error: str = "ProvisionedThroughputExceededException"
    p_500_before: float = 0.0
    p_500_after: float = 0.0
    p_drop_before: float = 0.0
    p_drop_after: float = 0.0
    p_request_limit: float = 0.0
    p_unprocessed: float = 0.0
    latency_s: float = 0.0
    seed: int = 0


@dataclass(slots=True)
class ProxyStats:
    """Counters since start/reset.

    ``throttled_items`` are items refused by a WCU budget (including those of
    wholly refused requests, counted in ``throttled_requests``);
    ``unprocessed_items`` are items handed back by ``p_unprocessed`` chance.
    """

    requests: int = 0
    forwarded: int = 0
    throttled_items: int = 0
    throttled_requests: int = 0
    unprocessed_items: int = 0
    errors_500_before: int = 0
    errors_500_after: int = 0
    drops_before: int = 0
    drops_after: int = 0
    request_limit: int = 0
    admitted_wcu: float = 0.0
    admitted_per_second: list[tuple[float, float]] = field(default_factory=list)


@dataclass(slots=True)
class _Bucket:
    rate: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json_response(
    status: int, payload: Json, base: CIMultiDict[str] | None = None
) -> web.Response:
    """Build a body botocore accepts: it rejects responses whose CRC32 header mismatches."""
    body = _dumps(payload)
    headers: CIMultiDict[str] = CIMultiDict(base or {})
    headers["Content-Type"] = _JSON_CT
    headers["x-amz-crc32"] = str(zlib.crc32(body) & 0xFFFFFFFF)
    headers.setdefault("x-amzn-RequestId", uuid.uuid4().hex)
    return web.Response(status=status, body=body, headers=headers)


def _error(status: int, type_: str, message: str) -> web.Response:
    return _json_response(status, {"__type": type_, "message": message})


def _throttle(name: str) -> web.Response:
    if name == "ThrottlingException":
        return _error(
            400,
            "com.amazon.coral.availability#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        )
    return _error(
        400,
        _DDB + name,
        "The level of configured provisioned throughput for the table was "
        "exceeded. Consider increasing your provisioning level with the "
        "UpdateTable API.",
    )


def _drop(request: web.BaseRequest) -> web.Response:
    """Close without answering; aiohttp then quietly discards the returned response."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


class FaultProxy:
    """Threaded fault-injecting proxy; use as a context manager or start()/stop()."""

    def __init__(self, upstream: str, config: FaultConfig | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.config = config or FaultConfig()
        self._active: FaultConfig | None = None
        self._rng = random.Random()
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._hash_keys: dict[str, str] = {}
        # Stats are mutated on the proxy thread and read from the test thread.
        self._lock = threading.Lock()
        self._stats = ProxyStats()
        self._t0 = time.monotonic()
        self._port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.ServerRunner | None = None

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("FaultProxy not started")
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            try:
                loop.run_until_complete(self._open(sock))
            except BaseException as exc:  # re-raised in start()
                failure.append(exc)
            ready.set()
            try:
                if not failure:
                    loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            sock.close()
            raise failure[0]
        self._port = port
        self.reset_stats()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = self._loop = None
        self._port = 0

    def stats(self) -> ProxyStats:
        with self._lock:
            return dataclasses.replace(
                self._stats, admitted_per_second=list(self._stats.admitted_per_second)
            )

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = ProxyStats()
            self._t0 = time.monotonic()

    async def _open(self, sock: socket.socket) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=1024).start()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _count(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self._stats, name, getattr(self._stats, name) + delta)

    def _record_admitted(self, wcu: float) -> None:
        with self._lock:
            self._stats.admitted_wcu += wcu
            per_s = self._stats.admitted_per_second
            second = int(time.monotonic() - self._t0)
            while len(per_s) <= second:  # zero-fill so charts show idle seconds
                per_s.append((float(len(per_s)), 0.0))
            per_s[second] = (per_s[second][0], per_s[second][1] + wcu)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        cfg = self.config
        if cfg is not self._active:
            self._active, self._rng, self._buckets = cfg, random.Random(cfg.seed), {}
        body = await request.read()
        op = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        self._count(requests=1)
        faulty = op in _FAULT_OPS
        # Draw every fault at arrival so outcomes don't depend on upstream timing.
        rolls = [
            faulty and p > 0 and self._rng.random() < p
            for p in (
                cfg.p_drop_before,
                cfg.p_500_before,
                cfg.p_request_limit,
                cfg.p_drop_after,
                cfg.p_500_after,
            )
        ]
        drop_before, err_before, limit, drop_after, err_after = rolls
        if drop_before:
            self._count(drops_before=1)
            return _drop(request)
        if err_before:
            self._count(errors_500_before=1)
            return _error(500, _DDB + "InternalServerError", "Internal server error")
        if limit:
            self._count(request_limit=1)
            return _error(
                400,
                _DDB + "RequestLimitExceeded",
                "Throughput exceeds the current throughput limit for your "
                "account. Please contact AWS Support at "
                "https://aws.amazon.com/support request a limit increase",
            )
        refused: dict[str, list[Json]] = {}
        if op in _BUDGET_OPS:
            outcome = await self._apply_budget(op, body, request.headers, cfg)
            if isinstance(outcome, web.Response):
                return outcome
            body, refused = outcome
        if faulty and cfg.latency_s > 0:
            await asyncio.sleep(cfg.latency_s)
        try:
            status, headers, data = await self._forward(
                request.method, request.raw_path, request.headers, body
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            # A dead upstream is a test-setup bug; say so instead of a bare 500.
            return _error(502, _DDB + "InternalServerError", f"faultproxy upstream: {exc!r}")
        if drop_after:
            self._count(drops_after=1)
            return _drop(request)
        if err_after:
            self._count(errors_500_after=1)
            return _error(500, _DDB + "InternalServerError", "Internal server error")
        if refused and status == 200:
            payload: Json = json.loads(data)
            unprocessed = payload.setdefault("UnprocessedItems", {})
            for table, reqs in refused.items():
                unprocessed.setdefault(table, []).extend(reqs)
            return _json_response(status, payload, headers)
        return web.Response(status=status, body=data, headers=headers)

    async def _apply_budget(
        self,
        op: str,
        body: bytes,
        headers: Mapping[str, str],
        cfg: FaultConfig,
    ) -> web.Response | tuple[bytes, dict[str, list[Json]]]:
        """Split a write into admitted and refused items; answer directly if none pass."""
        req: Json = json.loads(body)
        if op == "BatchWriteItem":
            batch: dict[str, list[Json]] = req.get("RequestItems", {})
        else:  # a single-item write is costed as a one-item batch
            batch = {req["TableName"]: [req]}
        n = sum(len(reqs) for reqs in batch.values())
        chosen: set[int] = set()
        if (
            op == "BatchWriteItem"
            and n
            and cfg.p_unprocessed > 0
            and self._rng.random() < cfg.p_unprocessed
        ):
            chosen = set(self._rng.sample(range(n), self._rng.randint(1, n)))
        hash_keys = {t: await self._hash_key(t, headers) for t in batch}
        budgeted = cfg.table_wcu_per_s is not None or cfg.partition_wcu_per_s is not None
        admitted: dict[str, list[Json]] = {}
        refused: dict[str, list[Json]] = {}
        throttled = index = 0
        now = time.monotonic()
        admitted_wcu = 0.0
        for table, reqs in batch.items():
            for entry in reqs:
                index += 1
                if index - 1 in chosen:
                    refused.setdefault(table, []).append(entry)
                    continue
                item = self._item_of(op, entry)
                wcu = max(1, math.ceil(len(_dumps(item)) / 1024))
                key = _dumps(item.get(hash_keys[table]))
                part = zlib.crc32(key) % max(1, cfg.partitions)
                if budgeted and not self._take(cfg, table, part, wcu, now):
                    throttled += 1
                    refused.setdefault(table, []).append(entry)
                    continue
                admitted.setdefault(table, []).append(entry)
                admitted_wcu += wcu
        self._count(throttled_items=throttled, unprocessed_items=len(chosen))
        if admitted_wcu:
            self._record_admitted(admitted_wcu)
        if not admitted:
            if throttled or op != "BatchWriteItem":
                self._count(throttled_requests=1)
                return _throttle(cfg.throttle_error)
            return _json_response(200, {"UnprocessedItems": refused})
        if not refused:
            return body, refused  # unchanged bytes: forward exactly what the client sent
        req["RequestItems"] = admitted
        return _dumps(req), refused

    @staticmethod
    def _item_of(op: str, entry: Json) -> Json:
        if op == "PutItem":
            return dict(entry["Item"])
        if op == "DeleteItem":
            return dict(entry["Key"])
        if "PutRequest" in entry:
            return dict(entry["PutRequest"]["Item"])
        return dict(entry["DeleteRequest"]["Key"])

    def _take(self, cfg: FaultConfig, table: str, part: int, wcu: int, now: float) -> bool:
        """Admit only if both the table and the partition bucket can pay."""
        buckets = []
        for rate, slot in ((cfg.table_wcu_per_s, -1), (cfg.partition_wcu_per_s, part)):
            if rate is None:
                continue
            bucket = self._buckets.setdefault((table, slot), _Bucket(rate, rate, now))
            bucket.refill(now)
            buckets.append(bucket)
        if any(b.tokens < wcu for b in buckets):
            return False
        for b in buckets:
            b.tokens -= wcu
        return True

    async def _hash_key(self, table: str, headers: Mapping[str, str]) -> str:
        """Ask upstream for the table's HASH key, reusing the client's credentials.

        Copying the client's headers keeps us in the same DynamoDB Local database
        (it partitions by access key unless -sharedDb).  Failures are not cached:
        the table may simply not exist yet, and upstream will report that itself.
        """
        if table in self._hash_keys:
            return self._hash_keys[table]
        fwd = CIMultiDict(headers)
        fwd["X-Amz-Target"] = "DynamoDB_20120810.DescribeTable"
        fwd["Content-Type"] = _JSON_CT
        status, _, data = await self._forward(
            "POST", "/", fwd, _dumps({"TableName": table}), count=False
        )
        if status != 200:
            return ""
        schema = json.loads(data)["Table"]["KeySchema"]
        name: str = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
        self._hash_keys[table] = name
        return name

    async def _forward(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, count: bool = True
    ) -> tuple[int, CIMultiDict[str], bytes]:
        assert self._session is not None
        fwd: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in headers.items() if k.lower() not in _DROP_REQ
        )
        fwd["Accept-Encoding"] = "identity"
        if count:
            self._count(forwarded=1)
        url = URL(self.upstream + path, encoded=True)
        async with self._session.request(method, url, headers=fwd, data=body) as resp:
            data = await resp.read()
            out: CIMultiDict[str] = CIMultiDict(
                (k, v) for k, v in resp.headers.items() if k.lower() not in _DROP_RESP
            )
            return resp.status, out, data
