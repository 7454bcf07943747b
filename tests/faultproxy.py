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
  each test case starts from a known state; the times of ``table_wcu_schedule``,
  ``outages`` and ``creating_for_s`` count from that assignment.
* A ``table_wcu_schedule`` step takes effect at the next write: the interval that
  crossed it refills at the new rate, and the tokens are capped at it at once.
* ``refuse_fraction`` and ``p_unprocessed`` hand back items picked uniformly at random;
  those items are neither charged to a budget nor forwarded.
* The hot key's bucket is charged on top of the table's and the partition's; an item
  of the hot key is admitted only if all three can pay.
* ``throttling_reasons`` names only table-write reasons (a table budget:
  TableWriteProvisionedThroughputExceeded, or TableWriteMaxOnDemandThroughputExceeded
  with ``throttle_error="ThrottlingException"``; a partition or the hot key:
  TableWriteKeyRangeThroughputExceeded), never an index's, and puts every table in
  account 000000000000 of us-east-1.  BatchWriteItem's UnprocessedItems carry no reasons,
  as in the real service.
* Outages fail only the faulty ops; ``creating_for_s`` rewrites only DescribeTable and
  refuses only BatchWriteItem and PutItem.  Other reads stay reliable, although the real
  service would fail them too, so a test can always read back what landed.
* A cut-off 200 (``p_bad_json_200``) carries the CRC32 of the cut body, so a client's
  JSON check, not its CRC check, must catch it; ``p_bad_crc`` keeps the body whole.
  429 and HTML answers carry no CRC32 header, as a gateway's don't.
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
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tests import faultmodes as modes
from tests.faultmodes import DDB as _DDB
from tests.faultmodes import JSON_CT as _JSON_CT
from tests.faultmodes import Json
from tests.faultmodes import drop as _drop
from tests.faultmodes import dumps as _dumps
from tests.faultmodes import error as _error
from tests.faultmodes import json_response as _json_response

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


@dataclass(slots=True)
class FaultConfig:
    """What to inject; probabilities are per eligible request, times are seconds since
    the config was assigned to ``proxy.config``."""

    table_wcu_per_s: float | None = None
    # ((start, WCU/s), ...): the table's budget over time; replaces table_wcu_per_s.
    table_wcu_schedule: tuple[tuple[float, float], ...] = ()
    partitions: int = 1
    partition_wcu_per_s: float | None = None
    # Items whose partition-key value (S or N) is hot_key share one bucket.
    hot_key: str | None = None
    key_wcu_per_s: float | None = None
    throttle_error: str = "ProvisionedThroughputExceededException"
    throttling_reasons: bool = False  # throttling errors name DynamoDB's reasons
    # Every BatchWriteItem hands back this fraction of its items, whatever the rate.
    refuse_fraction: float = 0.0
    # ((start, end), ...): faulty ops fail as outage_kind says: "503", "reset", "html".
    outages: tuple[tuple[float, float], ...] = ()
    outage_kind: str = "503"
    creating_for_s: float = 0.0  # the table is CREATING: writes find no table
    p_500_before: float = 0.0
    p_500_after: float = 0.0
    p_drop_before: float = 0.0
    p_drop_after: float = 0.0
    p_request_limit: float = 0.0
    p_unprocessed: float = 0.0
    p_409: float = 0.0  # ReplicatedWriteConflictException, not forwarded
    p_429: float = 0.0  # a gateway's plain-text 429, not forwarded
    p_html_400: float = 0.0  # a corporate proxy's HTML 400, not forwarded
    p_bad_json_200: float = 0.0  # forwarded, then the 200's body cut off
    p_bad_crc: float = 0.0  # forwarded, then the 200's x-amz-crc32 is "abc"
    latency_s: float = 0.0
    seed: int = 0


@dataclass(slots=True)
class ProxyStats:
    """Counters since start/reset.

    ``throttled_items`` are items refused by a WCU budget (including those of
    wholly refused requests, counted in ``throttled_requests``, and the hot key's,
    also counted in ``hot_key_items``); ``unprocessed_items`` are items handed back by
    ``p_unprocessed`` chance, ``refused_items`` those of ``refuse_fraction``.  The
    other counters count requests.
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
    refused_items: int = 0
    hot_key_items: int = 0
    outages_503: int = 0
    outages_reset: int = 0
    outages_html: int = 0
    creating_describes: int = 0
    creating_refusals: int = 0
    errors_409: int = 0
    errors_429: int = 0
    errors_html_400: int = 0
    bad_json_200: int = 0
    bad_crc: int = 0
    admitted_wcu: float = 0.0
    admitted_per_second: list[tuple[float, float]] = field(default_factory=list)
    # (seconds since start/reset, WCU) of each forwarded write, in arrival order.
    admissions: list[tuple[float, float]] = field(default_factory=list)

    def seconds_to_admit(self, share: float) -> float:
        """From the first admitted write until `share` of all admitted WCU was: the
        pace while the pipeline is full, without the startup or the last retries' tail
        (items refused many times in a row wait out long backoffs)."""
        goal = share * self.admitted_wcu
        total = 0.0
        for at, wcu in self.admissions:
            total += wcu
            if total >= goal:
                return at - self.admissions[0][0]
        raise ValueError("nothing admitted")


@dataclass(slots=True)
class _Bucket:
    rate: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


class FaultProxy:
    """Threaded fault-injecting proxy; use as a context manager or start()/stop()."""

    def __init__(self, upstream: str, config: FaultConfig | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.config = config or FaultConfig()
        self._active: FaultConfig | None = None
        self._active_at = 0.0
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
    def config(self) -> FaultConfig:
        return self._current[0]

    @config.setter
    def config(self, cfg: FaultConfig) -> None:
        modes.check(cfg)
        # One attribute, so the proxy thread never pairs a config with another's time.
        self._current = (cfg, time.monotonic())

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
                self._stats,
                admitted_per_second=list(self._stats.admitted_per_second),
                admissions=list(self._stats.admissions),
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
            at = time.monotonic() - self._t0
            self._stats.admissions.append((at, wcu))
            second = int(at)
            while len(per_s) <= second:  # zero-fill so charts show idle seconds
                per_s.append((float(len(per_s)), 0.0))
            per_s[second] = (per_s[second][0], per_s[second][1] + wcu)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        cfg, set_at = self._current
        if cfg is not self._active:
            self._active, self._rng, self._buckets = cfg, random.Random(cfg.seed), {}
            self._active_at = set_at
        body = await request.read()
        op = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        self._count(requests=1)
        faulty = op in _FAULT_OPS
        t = time.monotonic() - set_at
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
        hits = modes.draw(self._rng, cfg) if faulty else frozenset()
        if (early := modes.unavailable(cfg, op, t, request, faulty)) is not None:
            return self._inject(early)
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
        if (early := modes.interposed(hits)) is not None:
            return self._inject(early)
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
            headers, data = modes.with_body(payload, headers)
        if (late := modes.after_forward(cfg, op, t, hits, (status, headers, data))) is not None:
            return self._inject(late)
        return web.Response(status=status, body=data, headers=headers)

    def _inject(self, injection: modes.Injection) -> web.Response:
        counter, response = injection
        self._count(**{counter: 1})
        return response

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
        # Drawn after p_unprocessed's, among the rest, so both counters stay disjoint.
        declined: set[int] = set()
        if op == "BatchWriteItem" and n and cfg.refuse_fraction > 0:
            rest = [i for i in range(n) if i not in chosen]
            k = min(len(rest), modes.refused_count(self._rng, cfg.refuse_fraction, n))
            declined = set(self._rng.sample(rest, k))
        hash_keys = {t: await self._hash_key(t, headers) for t in batch}
        admitted: dict[str, list[Json]] = {}
        refused: dict[str, list[Json]] = {}
        throttled = hot = index = 0
        limits: set[tuple[str, str]] = set()  # (budget, table) pairs that refused an item
        now = time.monotonic()
        admitted_wcu = 0.0
        for table, reqs in batch.items():
            for entry in reqs:
                index += 1
                if index - 1 in chosen or index - 1 in declined:
                    refused.setdefault(table, []).append(entry)
                    continue
                item = self._item_of(op, entry)
                wcu = max(1, math.ceil(len(_dumps(item)) / 1024))
                value = item.get(hash_keys[table])
                part = zlib.crc32(_dumps(value)) % max(1, cfg.partitions)
                is_hot = cfg.hot_key is not None and modes.key_string(value) == cfg.hot_key
                short = self._take(cfg, table, part, is_hot, wcu, now)
                if short:
                    throttled += 1
                    hot += "hot_key" in short
                    limits.update((limit, table) for limit in short)
                    refused.setdefault(table, []).append(entry)
                    continue
                admitted.setdefault(table, []).append(entry)
                admitted_wcu += wcu
        self._count(
            throttled_items=throttled,
            unprocessed_items=len(chosen),
            refused_items=len(declined),
            hot_key_items=hot,
        )
        if admitted_wcu:
            self._record_admitted(admitted_wcu)
        if not admitted:
            if throttled or op != "BatchWriteItem":
                self._count(throttled_requests=1)
                named = cfg.throttling_reasons
                reasons = modes.throttling_reasons(cfg.throttle_error, limits) if named else None
                return modes.throttle(cfg.throttle_error, reasons)
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

    def _take(
        self, cfg: FaultConfig, table: str, part: int, hot: bool, wcu: int, now: float
    ) -> tuple[str, ...]:
        """Admit (return ()) only if every bucket the item falls under can pay; else name
        the budgets that cannot: "table", "partition", "hot_key"."""
        slots = (
            ("table", -1, modes.table_rate(cfg, now - self._active_at)),
            ("partition", part, cfg.partition_wcu_per_s),
            ("hot_key", -2, cfg.key_wcu_per_s if hot else None),
        )
        buckets: list[tuple[str, _Bucket]] = []
        for name, slot, rate in slots:
            if rate is None:
                continue
            bucket = self._buckets.setdefault((table, slot), _Bucket(rate, rate, now))
            bucket.rate = rate  # a table_wcu_schedule step changes the table's rate
            bucket.refill(now)
            buckets.append((name, bucket))
        short = tuple(name for name, b in buckets if b.tokens < wcu)
        if not short:
            for _, b in buckets:
                b.tokens -= wcu
        return short

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
