"""Issue 13's table: under each failure pattern, what share of the ideal rate does a
client get?

    python -m benchmarks.patterns [--seconds 20] [--max-seconds 45] [--quick]
        [--only step_down,fleet]

Three clients, each a child process on a fresh table, one after another on the same fault
proxy (tests/faultproxy.py) in front of one DynamoDB Local:

- ddb-loader CLI, defaults;
- boto3 `Table.batch_writer()` with botocore's standard retry mode (`benchmarks.peer_boto3`);
- aiodynamo `batch_write`, 16 tasks of 25-item batches (`benchmarks.peer_aiodynamo`).

Patterns, each a `FaultConfig`, and what each is measured against:

1. unfaulted: items/s, the baseline of patterns 2 and 3 (same client, same items);
2. 30% of every batch's items handed back, at any rate: items/s / the unfaulted items/s;
3. the same with 10%;
4. a table that admits 1,000 WCU/s: share of it used after the first 5 s, and share of
   the requests from then on that were throttled;
5. capacity stepping 500 -> 2,000 WCU/s: share of the new capacity used 10 s after the
   step (two seconds' mean);
6. a tenth of the items in one item collection that admits 100 WCU/s, the table 2,000:
   job time / the hot key's minimum (hot items / 100 s);
7. capacity stepping down 2,000 -> 500 WCU/s: share of the requests throttled from 5 s
   after the step to the end of the box, and share of the 500 used over that span;
8. three processes of the same client started together, each loading its own keys into one
   table that admits 1,500 WCU/s, with no coordination: from 10 s after the first admitted
   write, each process's WCU/s, the total's share of the 1,500, and the slowest process's
   share of a fair share (500).

Items are small (1 WCU), so WCU/s = items/s. Patterns 1-3 and 6 run to completion (stopped
after `--max-seconds`, then measured over what they wrote); 4, 5, 7 and 8 are time-boxed.
items/s and job times are the proxy's: from its first admitted write to its last, the
clients' start-up left out. Patterns 1-3 load as many items as the client's unfaulted pace
writes in `--seconds`, measured first on a short load; so every client's runs take about
as long. In pattern 8 the proxy tells the processes apart by their partition keys' prefix
(`F1#...`, `F2#...`, `F3#...`: each process's file has its own).

`--only` runs some patterns (their names: `PATTERNS`; 2 and 3 bring 1, their base). Only a
full-size run of every pattern writes benchmarks/results/patterns.json and .png; a
`--quick` one goes to the git-ignored results/tmp/quick/, and a partial one to
results/tmp/ (as `patterns-<names>`), so neither replaces the committed results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks import common
from benchmarks.catalog import write_jsonl
from benchmarks.throttled import CONTENDERS, SETTLE_S, Contender, CountingProxy, summarize
from tests.faultmodes import dumps
from tests.faultproxy import FaultConfig, ProxyStats

NAME = "patterns"
HOT_KEY = "HOT"
HOT_WCU = 100.0
HOT_SHARE = 10  # one item in ten is the hot key's
BUDGET_WCU = 1000.0
STEP_WCU = (500.0, 2000.0)
HOT_TABLE_WCU = 2000.0
WINDOW_S = 2  # seconds averaged for the stepped capacity, against one second's noise
DOWN_WCU = (2000.0, 500.0)
FLEET_WCU = 1500.0
FLEET_SIZE = 3
HASH_KEY = "PK"  # common.create_table's partition key

PATTERNS = ("unfaulted", "refuse_30", "refuse_10", "budget", "step", "hot", "step_down", "fleet")
REFUSALS = {"unfaulted": 0.0, "refuse_30": 0.3, "refuse_10": 0.1}

_BY_TABLE = {c.table: c for c in CONTENDERS}
CLIENTS = [
    dataclasses.replace(_BY_TABLE["thr-loader"], label="ddb-loader", table="pat-loader"),
    dataclasses.replace(_BY_TABLE["thr-boto3"], label="boto3 batch_writer", table="pat-boto3"),
    Contender(
        "aiodynamo x16",
        "pat-aiodynamo",
        ("-m", "benchmarks.peer_aiodynamo", "--endpoint", "{url}", "--table", "{table}",
         "--source", "{source}", "--tasks", "16"),
    ),
]  # fmt: skip


class Proxy(CountingProxy):
    """throttled.py's counting proxy, also counting the requests it is still handling: a
    client stopped mid-run leaves some in flight, and DynamoDB Local, still writing them,
    times a DeleteTable or CreateTable out waiting for its lock.

    With `tally_prefixes` set, it also charges each admitted item's WCU to its partition
    key's prefix (up to the first "#"): which of several processes wrote it, when each
    loads keys of its own. Off by default: the extra parse would cost the other patterns
    CPU on the cores the clients use."""

    in_flight = 0

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.tally_prefixes = False
        # prefix -> (seconds since reset, WCU) of each admitted request's items with it
        self.by_prefix: dict[str, list[tuple[float, float]]] = {}

    def reset_stats(self) -> None:
        super().reset_stats()
        with self._lock:
            self.by_prefix = {}

    async def _apply_budget(
        self, op: str, body: bytes, headers: Mapping[str, str], cfg: FaultConfig
    ) -> Any:
        outcome = await super()._apply_budget(op, body, headers, cfg)
        # A tuple is (the body forwarded, with only the admitted items; the refused).
        if self.tally_prefixes and op == "BatchWriteItem" and isinstance(outcome, tuple):
            self._tally(outcome[0])
        return outcome

    def prefixes(self) -> dict[str, list[tuple[float, float]]]:
        """A copy of the tallies by prefix."""
        with self._lock:
            return {prefix: list(charges) for prefix, charges in self.by_prefix.items()}

    def _tally(self, body: bytes) -> None:
        at = time.monotonic() - self._t0
        charged: dict[str, float] = {}
        for entries in json.loads(body)["RequestItems"].values():
            for entry in entries:
                item = self._item_of("BatchWriteItem", entry)
                prefix = str(item.get(HASH_KEY, {}).get("S", "")).partition("#")[0]
                # The proxy's own costing (faultproxy.py), so the tallies add up to its total.
                cost = max(1, math.ceil(len(dumps(item)) / 1024))
                charged[prefix] = charged.get(prefix, 0.0) + cost
        with self._lock:
            for prefix, wcu in charged.items():
                self.by_prefix.setdefault(prefix, []).append((at, wcu))

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        with self._lock:
            self.in_flight += 1
        try:
            return await super()._handle(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def wait_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Sizes:
    seconds: float  # how long a finite run should take
    max_seconds: float  # a finite run still going then is stopped
    box: float  # pattern 4's time box
    step_at: float  # pattern 5's step, and how long after it the capacity is measured
    after_step: float
    calibration: int  # items of the short load that sizes patterns 1-3, and the warm-up
    down_span: float  # pattern 7 (steps at step_at): seconds measured from 5 s after it
    fleet_box: float  # pattern 8's time box
    fleet_settle: float  # pattern 8: seconds after the first admitted write left out


FULL = Sizes(
    seconds=20, max_seconds=45, box=20, step_at=10, after_step=10, calibration=10_000,
    down_span=10, fleet_box=30, fleet_settle=10,
)  # fmt: skip
QUICK = Sizes(
    seconds=3, max_seconds=10, box=8, step_at=3, after_step=3, calibration=1000,
    down_span=4, fleet_box=10, fleet_settle=3,
)  # fmt: skip


# The proxy's counters when a run was stopped: Run's stats, partial, log and at.
Frozen = tuple[ProxyStats, int, list[tuple[float, bool]], float]


@dataclass(slots=True)
class Run:
    """One client's run of one pattern, as the proxy saw it when the child ended or was
    stopped (`at`: seconds since the proxy's counters were reset)."""

    child: common.ChildResult
    stats: ProxyStats
    partial: int
    log: list[tuple[float, bool]]
    at: float
    items: int  # in the input
    stored: int | None  # in the table afterwards (Scan COUNT), if it ran to completion
    by_prefix: dict[str, list[tuple[float, float]]] = dataclasses.field(default_factory=dict)

    @property
    def first(self) -> float | None:
        return self.stats.admissions[0][0] if self.stats.admissions else None

    def span(self) -> float | None:
        """First admitted write to the last (to the stop, if stopped)."""
        if self.first is None:
            return None
        end = self.at if self.child.stopped else self.stats.admissions[-1][0]
        return end - self.first

    def items_per_s(self) -> float | None:
        span = self.span()
        return self.stats.admitted_wcu / span if span else None

    def pace_90(self) -> float | None:
        """items/s up to 90% of the items: without the tail of items refused many times
        in a row, which wait out long backoffs by chance."""
        if self.child.stopped or not self.stats.admissions:
            return None
        seconds = self.stats.seconds_to_admit(0.9)
        return 0.9 * self.stats.admitted_wcu / seconds if seconds else None

    def failed(self) -> str | None:
        """Why this run's numbers are not a finished job's, in a few words; else None."""
        if self.child.killed or (not self.child.stopped and self.child.returncode != 0):
            return f"exit {self.child.returncode}"
        if self.stored is not None and self.stored != self.items:
            return "items missing"
        return None

    def problem(self) -> str | None:
        if (failed := self.failed()) is None:
            return None
        lines = [line.strip() for line in self.child.tail(6).splitlines() if line.strip()]
        stored = f"{self.stored:,}" if self.stored is not None else "?"
        return f"{failed}, {stored} of {self.items:,} items stored: " + " | ".join(lines)


class Bench:
    """The proxy, DynamoDB Local and the sizes every run shares."""

    def __init__(self, ddb_url: str, proxy: Proxy, sizes: Sizes) -> None:
        self.ddb_url, self.proxy, self.sizes = ddb_url, proxy, sizes

    def run(
        self,
        who: Contender,
        pattern: str,
        config: FaultConfig,
        source: Path,
        items: int,
        box: float,
    ) -> Run:
        """`who` on a fresh table under `config`, stopped after `box` seconds."""
        return self.run_together(who, pattern, config, [source], items, box)[0]

    def run_together(
        self,
        who: Contender,
        pattern: str,
        config: FaultConfig,
        sources: Sequence[Path],
        items: int,
        box: float,
    ) -> list[Run]:
        """A child of `who` per source (`items` each), started together on one fresh table
        under `config`, all stopped after `box` seconds; their Runs share the proxy's view,
        frozen when the first is stopped."""
        together = f" x{len(sources)}" if len(sources) > 1 else ""
        print(f"  {who.label}{together} ...", flush=True)
        table = common.create_table(self.ddb_url, f"{who.table}-{pattern}", gsi=False)
        # A new object: the proxy's buckets, random draws and schedule restart with it.
        self.proxy.config = dataclasses.replace(config)
        self.proxy.reset_stats()
        started = time.monotonic()
        commands = [
            [
                common.PY,
                *(p.format(url=self.proxy.url, table=table, source=str(s)) for p in who.command),
            ]
            for s in sources
        ]
        frozen: list[tuple[Frozen, dict[str, list[tuple[float, float]]]]] = []
        lock = threading.Lock()

        def freeze() -> None:
            with lock:  # each child's thread stops it, and calls this, at nearly one time
                if frozen:
                    return
                proxy, at = self.proxy, time.monotonic() - started
                view = (proxy.stats(), proxy.partial_requests, list(proxy.log), at)
                frozen.append((view, proxy.prefixes()))

        children = run_children(commands, timeout_s=box + 30, stop_after_s=box, on_stop=freeze)
        freeze()  # if every child ended on its own before the box
        self.proxy.wait_idle(30.0)
        alone = len(children) == 1 and not children[0].stopped
        # Several children write into one table: a count could not say whose item is missing.
        stored = common.scan_count(self.ddb_url, table) if alone else None
        common.delete_table(self.ddb_url, table)
        view, by_prefix = frozen[0]
        runs = [Run(c, *view, items=items, stored=stored, by_prefix=by_prefix) for c in children]
        for n, run in enumerate(runs, 1):
            if (problem := run.problem()) is not None:
                name = f"{who.label} #{n}" if together else who.label
                print(f"    {name}: {problem}", flush=True)
        return runs


def run_children(
    commands: Sequence[Sequence[str]],
    *,
    timeout_s: float,
    stop_after_s: float,
    on_stop: Callable[[], None],
) -> list[common.ChildResult]:
    """`common.run_child` for every command at once, a thread each (each thread waits on
    its own child, so each keeps its own exit, CPU and output)."""
    if len(commands) == 1:
        return [
            common.run_child(
                commands[0], timeout_s=timeout_s, stop_after_s=stop_after_s, on_stop=on_stop
            )
        ]
    with ThreadPoolExecutor(len(commands)) as pool:
        futures = [
            pool.submit(
                common.run_child,
                command,
                timeout_s=timeout_s,
                stop_after_s=stop_after_s,
                on_stop=on_stop,
            )
            for command in commands
        ]
        return [future.result() for future in futures]


def record(
    label: str, run: Run, *, finite: bool, budget: float = BUDGET_WCU, **measured: Any
) -> dict[str, Any]:
    """A run for the JSON: `measured`, and throttled.py's view of the proxy's counters
    (`budget` is what its share of the budget is of)."""
    box = argparse.Namespace(seconds=run.at, budget=budget)  # the whole seconds of it
    return {
        **measured,
        "items": run.items,
        "stored": run.stored,
        "wall_s": round(run.child.wall_s, 1),
        # A finite run still going at --max-seconds: measured over what it wrote by then.
        "capped": finite and run.child.stopped,
        "failed": run.failed(),
        "problem": run.problem(),
        "proxy": summarize(label, run.child, run.stats, run.partial, run.log, box),
    }


# ---------------------------------------------------------------- inputs


def hot_key_file(count: int) -> Path:
    """Small catalog items, every tenth moved into the hot key's item collection (its old
    partition key becomes its sort key): written once into .cache/bench/, reused."""
    return _cached(f"small-hot-{count}.jsonl", _hot_items(count))


def fleet_file(process: int, count: int) -> Path:
    """Small catalog items with `fleet_prefix(process)` before each partition key
    (F1#PRODUCT#...): so each process of pattern 8 writes keys of its own, and the proxy
    can tell whose an admitted write was. Written once into .cache/bench/, reused."""
    prefix = fleet_prefix(process)
    items = (
        {**item, HASH_KEY: f"{prefix}#{item[HASH_KEY]}"} for item in common.small_products(count)
    )
    return _cached(f"small-{prefix.lower()}-{count}.jsonl", items)


def fleet_prefix(process: int) -> str:
    return f"F{process}"


def _cached(name: str, items: Iterator[dict[str, Any]]) -> Path:
    """`.cache/bench/<name>`, written from `items` unless it exists (it appears under its
    name only once complete). `items` is lazy: not read when the file exists."""
    path = common.CACHE / name
    if not path.exists():
        common.CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        write_jsonl(str(partial), items)
        partial.replace(path)
    return path


def _hot_items(count: int) -> Iterator[dict[str, Any]]:
    for number, item in enumerate(common.small_products(count)):
        if number % HOT_SHARE == 0:
            item = {**item, "PK": HOT_KEY, "SK": item["PK"]}
        yield item


# ---------------------------------------------------------------- the patterns


def calibrate(bench: Bench) -> dict[str, int]:
    """Items for patterns 1-3, per client: what its unfaulted pace writes in `seconds`."""
    sizes = bench.sizes
    source = common.catalog_file(sizes.calibration, small=True)
    print(f"sizing: {sizes.calibration:,} items, unfaulted", flush=True)
    counts = {}
    for who in CLIENTS:
        run = bench.run(who, "size", FaultConfig(), source, sizes.calibration, sizes.max_seconds)
        pace = run.items_per_s() or 0.0
        counts[who.label] = max(1000, int(round(pace * sizes.seconds, -3)))
        print(f"    {pace:,.0f} items/s: {counts[who.label]:,} items", flush=True)
    return counts


def refusals(
    bench: Bench, counts: dict[str, int], wanted: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Patterns 1-3 of `wanted`: unfaulted, then 30% and 10% of each batch handed back."""
    fractions = {k: f for k, f in REFUSALS.items() if k in wanted}
    rows: dict[str, dict[str, Any]] = {k: {} for k in fractions}
    for pattern, fraction in fractions.items():
        print(f"{pattern} (refuse_fraction={fraction})", flush=True)
        for who in CLIENTS:
            count = counts[who.label]
            source = common.catalog_file(count, small=True)
            config = FaultConfig(refuse_fraction=fraction, seed=1)
            run = bench.run(who, pattern, config, source, count, bench.sizes.max_seconds)
            base = rows["unfaulted"].get(who.label, {}).get("items_per_s")
            rate, pace = run.items_per_s(), run.pace_90()
            base_pace = rows["unfaulted"].get(who.label, {}).get("pace_90")
            rows[pattern][who.label] = record(
                who.label,
                run,
                finite=True,
                items_per_s=_round(rate, 1),
                pace_90=_round(pace, 1),
                ratio=_ratio(rate, base) if pattern != "unfaulted" else None,
                ratio_90=_ratio(pace, base_pace) if pattern != "unfaulted" else None,
            )
    return rows


def budget(bench: Bench) -> dict[str, dict[str, Any]]:
    """Pattern 4: a table that admits BUDGET_WCU WCU/s, time-boxed; more items than fit."""
    box = bench.sizes.box
    count = int(1.25 * box * BUDGET_WCU)
    source = common.catalog_file(count, small=True)
    print(f"budget ({BUDGET_WCU:,.0f} WCU/s, {box:.0f} s)", flush=True)
    out = {}
    for who in CLIENTS:
        config = FaultConfig(table_wcu_per_s=BUDGET_WCU)
        run = bench.run(who, "budget", config, source, count, box)
        entry = record(who.label, run, finite=False)
        view = entry["proxy"]
        requests = view["after_5s_requests"]
        entry["used"] = view["budget_share_after_5s"]
        entry["throttled_share"] = (
            round(view["after_5s_throttled"] / requests, 3) if requests else None
        )
        out[who.label] = entry
    return out


def step(bench: Bench) -> dict[str, dict[str, Any]]:
    """Pattern 5: STEP_WCU[0] WCU/s until `step_at`, then STEP_WCU[1]."""
    sizes = bench.sizes
    box = sizes.step_at + sizes.after_step + WINDOW_S
    before, after = STEP_WCU
    count = int(1.25 * (before * sizes.step_at + after * (box - sizes.step_at)))
    source = common.catalog_file(count, small=True)
    print(f"step ({before:,.0f} -> {after:,.0f} WCU/s at {sizes.step_at:.0f} s)", flush=True)
    start = int(sizes.step_at + sizes.after_step)
    out = {}
    for who in CLIENTS:
        config = FaultConfig(table_wcu_schedule=((0.0, before), (sizes.step_at, after)))
        run = bench.run(who, "step", config, source, count, box)
        entry = record(who.label, run, finite=False, budget=after)
        per_second = entry["proxy"]["wcu_per_second"]
        window = [w for t, w in per_second if start <= t < start + WINDOW_S]
        entry["used"] = round(sum(window) / (after * WINDOW_S), 3)
        out[who.label] = entry
    return out


def hot(bench: Bench) -> dict[str, dict[str, Any]]:
    """Pattern 6: every tenth item in one item collection admitting HOT_WCU WCU/s."""
    hot_items = math.ceil(HOT_WCU * bench.sizes.seconds)
    count = hot_items * HOT_SHARE
    source = hot_key_file(count)
    minimum = hot_items / HOT_WCU
    print(f"hot key ({hot_items:,} of {count:,} items at {HOT_WCU:.0f} WCU/s)", flush=True)
    out = {}
    for who in CLIENTS:
        config = FaultConfig(table_wcu_per_s=HOT_TABLE_WCU, hot_key=HOT_KEY, key_wcu_per_s=HOT_WCU)
        run = bench.run(who, "hot", config, source, count, bench.sizes.max_seconds)
        span = run.span()
        # Capped, the job took longer than its span so far: the ratio is a lower bound.
        out[who.label] = record(
            who.label,
            run,
            finite=True,
            job_s=_round(span, 2),
            minimum_s=minimum,
            ratio=_ratio(span, minimum),
            hot_items=hot_items,
        )
    return out


def step_down(bench: Bench) -> dict[str, dict[str, Any]]:
    """Pattern 7: DOWN_WCU[0] WCU/s until `step_at`, then DOWN_WCU[1]; measured from
    SETTLE_S after the step (the issue's "from 5 s after") to the end of the box."""
    sizes = bench.sizes
    start = sizes.step_at + SETTLE_S
    box = start + sizes.down_span
    before, after = DOWN_WCU
    count = int(1.25 * (before * sizes.step_at + after * (box - sizes.step_at)))
    source = common.catalog_file(count, small=True)
    print(f"step down ({before:,.0f} -> {after:,.0f} WCU/s at {sizes.step_at:.0f} s)", flush=True)
    out = {}
    for who in CLIENTS:
        config = FaultConfig(table_wcu_schedule=((0.0, before), (sizes.step_at, after)))
        run = bench.run(who, "step_down", config, source, count, box)
        entry = record(who.label, run, finite=False, budget=after)
        window = [w for t, w in entry["proxy"]["wcu_per_second"] if start <= t < box]
        entry["used"] = round(sum(window) / (after * len(window)), 3) if window else None
        # Throttled as in pattern 4: any of the request's items refused by the budget.
        settled = [refused for t, refused in run.log if t >= start]
        entry["requests_after"] = len(settled)
        entry["throttled_after"] = sum(settled)
        entry["throttled_share"] = round(sum(settled) / len(settled), 3) if settled else None
        out[who.label] = entry
    return out


def fleet(bench: Bench) -> dict[str, dict[str, Any]]:
    """Pattern 8: FLEET_SIZE processes of each client at once, each its own keys, into
    one table admitting FLEET_WCU WCU/s, time-boxed; nothing coordinates them."""
    sizes = bench.sizes
    box = sizes.fleet_box
    # Enough that none finishes inside the box even if it alone got the whole table.
    count = int(1.25 * box * FLEET_WCU)
    sources = [fleet_file(n, count) for n in range(1, FLEET_SIZE + 1)]
    print(
        f"fleet ({FLEET_SIZE} processes x {count:,} items, one table of "
        f"{FLEET_WCU:,.0f} WCU/s, {box:.0f} s)",
        flush=True,
    )
    config = FaultConfig(table_wcu_per_s=FLEET_WCU)
    out = {}
    bench.proxy.tally_prefixes = True
    try:
        for who in CLIENTS:
            runs = bench.run_together(who, "fleet", config, sources, count, box)
            out[who.label] = fleet_entry(who.label, runs, sizes.fleet_settle)
    finally:
        bench.proxy.tally_prefixes = False
    return out


def fleet_entry(label: str, runs: Sequence[Run], settle: float) -> dict[str, Any]:
    """Pattern 8's record: each process's admitted WCU/s from `settle` s after the
    fleet's first admitted write to the stop, and what the fleet made of the table."""
    view = runs[0]  # the proxy's, the same in every run of the fleet
    end = view.at
    start = end if view.first is None else view.first + settle
    span = end - start
    fair = FLEET_WCU / len(runs)
    processes: list[dict[str, Any]] = []
    rates: list[float | None] = []
    for n, run in enumerate(runs, 1):
        charges = view.by_prefix.get(fleet_prefix(n), [])
        rate = sum(w for t, w in charges if start <= t < end) / span if span > 0 else None
        rates.append(_round(rate, 1))
        processes.append(
            {
                "prefix": fleet_prefix(n) + "#",
                "wcu_per_s": rates[-1],
                "of_fair": _ratio(rate, fair),
                "admitted_wcu": sum(w for _, w in charges),
                "wcu_per_second": _per_second(charges, int(end)),
                "exit": run.child.returncode,
                "stopped": run.child.stopped,
                "wall_s": round(run.child.wall_s, 1),
                "cpu_s": round(run.child.cpu_s, 2),
                "failed": _fleet_failure(run),
            }
        )
    known = [r for r in rates if r is not None]
    total = sum(known) if len(known) == len(rates) else None
    # The first process that failed speaks for the fleet; else any one (the same view).
    worst = next((run for run in runs if _fleet_failure(run)), runs[0])
    entry = record(
        label,
        worst,
        finite=False,
        budget=FLEET_WCU,
        each=" / ".join("-" if r is None else f"{r:,.0f}" for r in rates),
        total_wcu_per_s=_round(total, 1),
        used=_ratio(total, FLEET_WCU),
        worst_of_fair=_ratio(min(known), fair) if total is not None else None,
        measured_from_s=round(start, 2),
        measured_to_s=round(end, 2),
        processes=processes,
    )
    entry["failed"] = _fleet_failure(worst)
    if entry["failed"] and not entry["problem"]:
        entry["problem"] = (
            f"a process finished inside the box ({worst.child.wall_s:.1f} s): give each more items"
        )
    return entry


def _fleet_failure(run: Run) -> str | None:
    """A time-boxed process that ended by itself measured a part of the box only."""
    return run.failed() or (None if run.child.stopped else "finished early")


def _per_second(charges: Iterable[tuple[float, float]], seconds: int) -> list[tuple[float, float]]:
    """(second, WCU admitted in it) for each whole second up to `seconds`, idle ones 0."""
    bins = [0.0] * seconds
    for at, wcu in charges:
        if int(at) < seconds:
            bins[int(at)] += wcu
    return [(float(t), w) for t, w in enumerate(bins)]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 3) if value is not None and base else None


# ---------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Row:
    pattern: str
    measure: str  # what the number is, and its ideal
    key: str  # results[key]
    field: str  # results[key][client][field]
    target: tuple[str, float] | None  # ("≥" or "≤", bound) for ddb-loader
    percent: bool = False


ROWS = [
    Row("1. unfaulted", "items/s (the base of 2, 3)", "unfaulted", "items_per_s", None),
    Row("2. refuse_fraction=0.3", "items/s / unfaulted (ideal 1)", "refuse_30", "ratio",
        ("≥", 0.6)),
    Row("", "the same, timed to 90% of the items", "refuse_30", "ratio_90", ("≥", 0.6)),
    Row("3. refuse_fraction=0.1", "items/s / unfaulted (ideal 1)", "refuse_10", "ratio",
        ("≥", 0.85)),
    Row("", "the same, timed to 90% of the items", "refuse_10", "ratio_90", ("≥", 0.85)),
    Row("4. table 1,000 WCU/s", "share used after 5 s (ideal 1)", "budget", "used", ("≥", 0.9),
        percent=True),
    Row("4. table 1,000 WCU/s", "requests throttled after 5 s", "budget", "throttled_share",
        ("≤", 0.1), percent=True),
    Row("5. 500 -> 2,000 WCU/s", "share of 2,000 used 10 s after (ideal 1)", "step", "used",
        ("≥", 0.8), percent=True),
    Row("6. hot key 100 WCU/s", "job time / (hot items / 100) (ideal 1)", "hot", "ratio",
        ("≤", 1.5)),
    Row("7. 2,000 -> 500 WCU/s", "requests throttled from 5 s after the step", "step_down",
        "throttled_share", ("≤", 0.1), percent=True),
    Row("", "share of 500 used from 5 s after (ideal 1)", "step_down", "used", None,
        percent=True),
    Row("8. 3 processes, 1,500 WCU/s", "each process's WCU/s (fair share 500)", "fleet",
        "each", None),
    Row("", "total / 1,500 (ideal 1)", "fleet", "used", ("≥", 0.9), percent=True),
    Row("", "slowest process / fair share (ideal 1)", "fleet", "worst_of_fair", ("≥", 0.7),
        percent=True),
]  # fmt: skip
LOADER = CLIENTS[0].label


def cell(entry: dict[str, Any], row: Row) -> str:
    if entry["failed"]:  # what it measured is in the JSON, but is no job's result
        return str(entry["failed"])
    value = entry.get(row.field)
    if value is None:
        return "-"
    if isinstance(value, str):  # already put as the table shows it
        return value
    text = f"{value:.0%}" if row.percent else f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
    if entry["capped"]:
        text = (">" if row.key == "hot" else "") + text + "*"
    return text


def verdict(entry: dict[str, Any], row: Row) -> str:
    if row.target is None:
        return "-"
    sign, bound = row.target
    shown = f"{bound:.0%}" if row.percent else f"{bound:.2f}"
    value = entry.get(row.field)
    if entry["failed"] or value is None:
        return f"{sign} {shown}: MISSED ({entry['failed'] or 'no result'})"
    met = value >= bound if sign == "≥" else value <= bound
    return f"{sign} {shown}: {'met' if met else 'MISSED'}"


def report(results: dict[str, Any], counts: dict[str, int], sizes: Sizes) -> None:
    print()
    common.print_table(
        ["pattern", "measure", *(c.label for c in CLIENTS), "ddb-loader target"],
        [
            [
                row.pattern,
                row.measure,
                *(cell(results[row.key][c.label], row) for c in CLIENTS),
                verdict(results[row.key][LOADER], row),
            ]
            for row in ROWS
            if row.key in results
        ],
    )
    finite = results.keys() & {"unfaulted", "refuse_30", "refuse_10", "hot"}
    notes = []
    if finite:
        notes.append(
            "items/s from the proxy: first admitted write to the last (90%: to the write that "
            "completed 90% of the items, without the tail of items refused many times in a row)."
        )
    if counts:
        notes.append(
            "Items per client for 1-3: " + ", ".join(f"{k} {n:,}" for k, n in counts.items())
        )
    if "hot" in results:
        hot = results["hot"][LOADER]
        notes.append(
            f"6: {hot['items']:,} items, of which {hot['hot_items']:,} hot (their bucket "
            "starts with one second's budget, so the ideal is a little under 1)."
        )
    if "step_down" in results:
        start = sizes.step_at + SETTLE_S
        notes.append(
            f"7: steps at {sizes.step_at:.0f} s; measured from {start:.0f} s to the stop at "
            f"{start + sizes.down_span:.0f} s; throttled: any item refused by the budget."
        )
    if "fleet" in results:
        notes.append(
            f"8: {FLEET_SIZE} processes of each client, stopped at {sizes.fleet_box:.0f} s; "
            f"measured from {sizes.fleet_settle:.0f} s after the first admitted write."
        )
    if finite:
        notes.append(
            f"*: stopped after {sizes.max_seconds:.0f} s, before it finished: measured over "
            "what it wrote by then (>: a lower bound)."
        )
    print("\n".join(notes))
    for key, by_client in results.items():
        for label, entry in by_client.items():
            if entry["problem"]:
                print(f"failed: {key}, {label}: {entry['problem']}")


# (label, results key, field, ddb-loader's target): a bar group each, higher is better.
SHARES = [
    ("refuse 30%", "refuse_30", "ratio", 0.6),
    ("refuse 10%", "refuse_10", "ratio", 0.85),
    ("1,000 WCU/s\nused", "budget", "used", 0.9),
    ("500 -> 2,000\n10 s after", "step", "used", None),
    ("hot key\nmin / job", "hot", "ratio", 1 / 1.5),
    ("2,000 -> 500\nused", "step_down", "used", None),
    ("3 processes\ntotal", "fleet", "used", 0.9),
    ("3 processes\nslowest / fair", "fleet", "worst_of_fair", 0.7),
]


def chart(results: dict[str, Any], sizes: Sizes, name: str = NAME) -> None:
    """Top: every pattern's share of its ideal, by client (the hot key's as minimum
    time / job time, so that higher is better throughout). Below: patterns 5 and 7 over
    time, and pattern 8's processes. Only the patterns that ran."""
    plt = common.pyplot()
    shares = [share for share in SHARES if share[1] in results]
    panels = [key for key in ("step", "step_down", "fleet") if key in results]
    if not shares and not panels:
        print("chart:   nothing to draw for these patterns")
        return
    rows = bool(shares) + bool(panels)
    fig = plt.figure(figsize=(max(13.0, 5.0 * len(panels)), 4.8 * rows))
    grid = fig.add_gridspec(rows, max(1, len(panels)))
    if shares:
        _share_bars(fig.add_subplot(grid[0, :]), results, shares)
    for n, key in enumerate(panels):
        ax = fig.add_subplot(grid[rows - 1, n])
        if key == "fleet":
            _fleet_bars(ax, results["fleet"])
            continue
        stepped = key == "step"
        before, after = STEP_WCU if stepped else DOWN_WCU
        end = sizes.step_at + (
            sizes.after_step + WINDOW_S if stepped else SETTLE_S + sizes.down_span
        )
        title = "5. capacity steps up 4x" if stepped else "7. capacity steps down 4x"
        _capacity_lines(
            ax, results[key], ((0, before), (sizes.step_at, after), (end, after)), title
        )
    common.save_figure(plt, fig, name)


def _share_bars(
    bars: Any, results: dict[str, Any], shares: Sequence[tuple[str, str, str, float | None]]
) -> None:
    width = 0.8 / len(CLIENTS)
    for n, who in enumerate(CLIENTS):
        values = []
        xs = [i + (n - (len(CLIENTS) - 1) / 2) * width for i in range(len(shares))]
        for x, (_, key, field, _) in zip(xs, shares, strict=True):
            entry = results[key][who.label]
            value = 0.0 if entry["failed"] else entry.get(field) or 0.0
            values.append(1 / value if key == "hot" and value else value)
            if entry["failed"]:
                bars.text(x, 0.02, f"failed: {entry['failed']}", rotation=90, ha="center",
                          va="bottom", fontsize=7)  # fmt: skip
        bars.bar(xs, values, width, label=who.label)
    for i, (*_, target) in enumerate(shares):
        if target is not None:
            bars.hlines(target, i - 0.4, i + 0.4, colors="black", linestyles="--", lw=1)
    bars.axhline(1.0, color="grey", lw=0.8)
    bars.set_xticks(range(len(shares)), [s[0] for s in shares], fontsize=8)
    bars.set_ylabel("share of the ideal (dashed: ddb-loader's target)")
    bars.set_title("Failure pattern -> share of the ideal rate", fontsize=10)
    bars.legend(fontsize=8)


def _capacity_lines(
    line: Any, by_client: dict[str, Any], capacity: Sequence[tuple[float, float]], title: str
) -> None:
    for who in CLIENTS:
        points = by_client[who.label]["proxy"]["wcu_per_second"]
        line.plot([t for t, _ in points], [w for _, w in points], marker=".", label=who.label)
    line.step([t for t, _ in capacity], [w for _, w in capacity], where="post", color="grey",
              linestyle="--", label="capacity")  # fmt: skip
    line.set_xlabel("seconds since the capacity was set")
    line.set_ylabel("WCU/s admitted")
    line.set_ylim(bottom=0)
    line.set_title(title, fontsize=10)
    line.legend(fontsize=8)
    line.grid(alpha=0.3)


def _fleet_bars(ax: Any, by_client: dict[str, Any]) -> None:
    """Pattern 8: each process's WCU/s over the measured span, by client."""
    fair = FLEET_WCU / FLEET_SIZE
    width = 0.8 / FLEET_SIZE
    for n in range(FLEET_SIZE):
        xs = [i + (n - (FLEET_SIZE - 1) / 2) * width for i in range(len(CLIENTS))]
        values = [by_client[c.label]["processes"][n]["wcu_per_s"] or 0.0 for c in CLIENTS]
        ax.bar(xs, values, width, label=f"process {n + 1}")
    ax.axhline(fair, color="grey", linestyle="--", lw=1, label="fair share")
    ax.axhline(0.7 * fair, color="black", linestyle=":", lw=1, label="70% of it (target)")
    ax.set_xticks(range(len(CLIENTS)), [c.label for c in CLIENTS], fontsize=8)
    ax.set_ylabel("WCU/s admitted (settled span)")
    ax.set_title(f"8. {FLEET_SIZE} processes, one {FLEET_WCU:,.0f} WCU/s table", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def selected(only: Sequence[str] | None, args: argparse.ArgumentParser) -> list[str]:
    """The patterns `--only` names (commas or spaces between), in PATTERNS' order; 2 and 3
    bring 1, the base they are measured against. None: every pattern."""
    if not only:
        return list(PATTERNS)
    names = {name for part in only for name in part.split(",") if name}
    if unknown := sorted(names - set(PATTERNS)):
        args.error(f"--only: no pattern {', '.join(unknown)} (choose from {', '.join(PATTERNS)})")
    if names & {"refuse_30", "refuse_10"}:
        names.add("unfaulted")
    return [name for name in PATTERNS if name in names]


def destination(quick: bool, partial: bool) -> Path:
    """Where the JSON and chart go: only a full-size run of every pattern replaces the
    committed results; a quick or partial one would be taken for them (BENCH_RESULTS,
    when set, decides for all)."""
    if os.environ.get("BENCH_RESULTS"):
        return common.RESULTS
    if quick:
        return common.QUICK_RESULTS
    return common.RESULTS / "tmp" if partial else common.RESULTS


def described(wanted: Sequence[str], sizes: Sizes) -> dict[str, str]:
    """The JSON's "patterns": what each pattern that ran was."""
    every = {
        "refuse_30": "FaultConfig(refuse_fraction=0.3)",
        "refuse_10": "FaultConfig(refuse_fraction=0.1)",
        "budget": f"FaultConfig(table_wcu_per_s={BUDGET_WCU:g})",
        "step": f"table_wcu_schedule=((0, {STEP_WCU[0]:g}), ({sizes.step_at:g}, {STEP_WCU[1]:g}))",
        "hot": f"table_wcu_per_s={HOT_TABLE_WCU:g}, hot_key={HOT_KEY!r}, "
        f"key_wcu_per_s={HOT_WCU:g}, one item in {HOT_SHARE}",
        "step_down": f"table_wcu_schedule=((0, {DOWN_WCU[0]:g}), ({sizes.step_at:g}, "
        f"{DOWN_WCU[1]:g})), measured from {sizes.step_at + SETTLE_S:g} s to "
        f"{sizes.step_at + SETTLE_S + sizes.down_span:g} s",
        "fleet": f"{FLEET_SIZE} processes of one client, FaultConfig(table_wcu_per_s="
        f"{FLEET_WCU:g}), each its own keys ({HASH_KEY} prefixed F1#, F2#, ...), stopped at "
        f"{sizes.fleet_box:g} s, measured from {sizes.fleet_settle:g} s after the first "
        "admitted write",
    }
    return {key: text for key, text in every.items() if key in wanted}


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="tiny sizes: check it works")
    args.add_argument("--seconds", type=float, default=None, help="a finite run's length")
    args.add_argument("--max-seconds", type=float, default=None, help="stop a run after this")
    args.add_argument(
        "--only", nargs="+", metavar="PATTERN", help=f"run just these: {', '.join(PATTERNS)}"
    )
    opts = args.parse_args(argv)
    wanted = selected(opts.only, args)
    partial = len(wanted) < len(PATTERNS)
    sizes = QUICK if opts.quick else FULL
    if opts.seconds:
        sizes = dataclasses.replace(
            sizes, seconds=opts.seconds, box=max(opts.seconds, SETTLE_S + 3)
        )
    if opts.max_seconds:
        sizes = dataclasses.replace(sizes, max_seconds=opts.max_seconds)
    common.begin(NAME)
    started = time.monotonic()
    timed = {"budget": budget, "step": step, "hot": hot, "step_down": step_down, "fleet": fleet}
    counts: dict[str, int] = {}
    results: dict[str, Any] = {}
    with common.dynamodb_local() as ddb_url:
        proxy = Proxy(ddb_url)
        proxy.start()
        try:
            bench = Bench(ddb_url, proxy, sizes)
            common.warm_up(ddb_url, sizes.calibration)
            if REFUSALS.keys() & set(wanted):
                counts = calibrate(bench)
                results.update(refusals(bench, counts, wanted))
            for key in wanted:
                if key in timed:
                    results[key] = timed[key](bench)
        finally:
            proxy.stop()
    report(results, counts, sizes)
    print(f"total {time.monotonic() - started:.0f} s")
    # A module-wide setting, as run_all --quick sets it for every benchmark.
    common.RESULTS = destination(opts.quick, partial)
    name = f"{NAME}-{'+'.join(wanted)}" if partial else NAME
    common.save_json(
        name,
        {
            "quick": opts.quick,
            "only": wanted if partial else None,
            "sizes": dataclasses.asdict(sizes),
            "item": "small catalog item, ~200 bytes, 1 WCU",
            "clients": [c.label for c in CLIENTS],
            "items_for_patterns_1_3": counts or None,
            "patterns": described(wanted, sizes),
            "targets": {
                r.key + ":" + r.field: f"{r.target[0]} {r.target[1]}"
                for r in ROWS
                if r.target and r.key in results
            },
            "results": results,
        },
    )
    chart(results, sizes, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
