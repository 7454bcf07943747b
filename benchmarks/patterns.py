"""Issue 13's table: under each failure pattern, what share of the ideal rate does a
client get?

    python -m benchmarks.patterns [--seconds 20] [--max-seconds 45] [--quick]

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
   job time / the hot key's minimum (hot items / 100 s).

Items are small (1 WCU), so WCU/s = items/s. Patterns 1-3 and 6 run to completion (stopped
after `--max-seconds`, then measured over what they wrote); 4 and 5 are time-boxed. items/s
and job times are the proxy's: from its first admitted write to its last, the clients'
start-up left out. Patterns 1-3 load as many items as the client's unfaulted pace writes
in `--seconds`, measured first on a short load; so every client's runs take about as long.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks import common
from benchmarks.catalog import write_jsonl
from benchmarks.throttled import CONTENDERS, SETTLE_S, Contender, CountingProxy, summarize
from tests.faultproxy import FaultConfig, ProxyStats

NAME = "patterns"
HOT_KEY = "HOT"
HOT_WCU = 100.0
HOT_SHARE = 10  # one item in ten is the hot key's
BUDGET_WCU = 1000.0
STEP_WCU = (500.0, 2000.0)
HOT_TABLE_WCU = 2000.0
WINDOW_S = 2  # seconds averaged for the stepped capacity, against one second's noise

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
    times a DeleteTable or CreateTable out waiting for its lock."""

    in_flight = 0

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


FULL = Sizes(seconds=20, max_seconds=45, box=20, step_at=10, after_step=10, calibration=10_000)
QUICK = Sizes(seconds=3, max_seconds=10, box=8, step_at=3, after_step=3, calibration=1000)


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
        print(f"  {who.label} ...", flush=True)
        table = common.create_table(self.ddb_url, f"{who.table}-{pattern}", gsi=False)
        # A new object: the proxy's buckets, random draws and schedule restart with it.
        self.proxy.config = dataclasses.replace(config)
        self.proxy.reset_stats()
        started = time.monotonic()
        fields = {"url": self.proxy.url, "table": table, "source": str(source)}
        command = [common.PY, *(part.format(**fields) for part in who.command)]
        frozen: list[tuple[ProxyStats, int, list[tuple[float, bool]], float]] = []

        def freeze() -> None:
            at = time.monotonic() - started
            frozen.append(
                (self.proxy.stats(), self.proxy.partial_requests, list(self.proxy.log), at)
            )

        child = common.run_child(command, timeout_s=box + 30, stop_after_s=box, on_stop=freeze)
        if not frozen:
            freeze()
        self.proxy.wait_idle(30.0)
        stored = None if child.stopped else common.scan_count(self.ddb_url, table)
        common.delete_table(self.ddb_url, table)
        run = Run(child, *frozen[0], items=items, stored=stored)
        if (problem := run.problem()) is not None:
            print(f"    {who.label}: {problem}", flush=True)
        return run


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
    path = common.CACHE / f"small-hot-{count}.jsonl"
    if not path.exists():
        common.CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        write_jsonl(str(partial), _hot_items(count))
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


def refusals(bench: Bench, counts: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Patterns 1-3: unfaulted, then 30% and 10% of each batch handed back."""
    rows: dict[str, dict[str, Any]] = {"unfaulted": {}, "refuse_30": {}, "refuse_10": {}}
    fractions = {"unfaulted": 0.0, "refuse_30": 0.3, "refuse_10": 0.1}
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
        None, percent=True),
    Row("6. hot key 100 WCU/s", "job time / (hot items / 100) (ideal 1)", "hot", "ratio",
        ("≤", 1.5)),
]  # fmt: skip
LOADER = CLIENTS[0].label


def cell(entry: dict[str, Any], row: Row) -> str:
    if entry["failed"]:  # what it measured is in the JSON, but is no job's result
        return str(entry["failed"])
    value = entry.get(row.field)
    if value is None:
        return "-"
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
        ],
    )
    print(
        "items/s from the proxy: first admitted write to the last (90%: to the write that "
        "completed 90% of the items, without the tail of items refused many times in a row)."
        "\nItems per client for 1-3: "
        + ", ".join(f"{label} {n:,}" for label, n in counts.items())
        + f"; 6: {results['hot'][LOADER]['items']:,}, of which "
        f"{results['hot'][LOADER]['hot_items']:,} hot (their bucket starts with one second's "
        "budget, so the ideal is a little under 1).\n"
        f"*: stopped after {sizes.max_seconds:.0f} s, before it finished: measured over what "
        "it wrote by then (>: a lower bound)."
    )
    for key, by_client in results.items():
        for label, entry in by_client.items():
            if entry["problem"]:
                print(f"failed: {key}, {label}: {entry['problem']}")


def chart(results: dict[str, Any], sizes: Sizes) -> None:
    """Left: every pattern's share of its ideal, by client (the hot key's as minimum
    time / job time, so that higher is better throughout). Right: pattern 5 over time."""
    plt = common.pyplot()
    fig, (bars, line) = plt.subplots(1, 2, figsize=(13, 4.8), width_ratios=[3, 2])
    shares = [
        ("refuse 30%", "refuse_30", "ratio", 0.6),
        ("refuse 10%", "refuse_10", "ratio", 0.85),
        ("1,000 WCU/s\nused", "budget", "used", 0.9),
        ("500 -> 2,000\n10 s after", "step", "used", None),
        ("hot key\nmin / job", "hot", "ratio", 1 / 1.5),
    ]
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
    for who in CLIENTS:
        points = results["step"][who.label]["proxy"]["wcu_per_second"]
        line.plot([t for t, _ in points], [w for _, w in points], marker=".", label=who.label)
    box = sizes.step_at + sizes.after_step + WINDOW_S
    before, after = STEP_WCU
    line.step([0, sizes.step_at, box], [before, after, after], where="post", color="grey",
              linestyle="--", label="capacity")  # fmt: skip
    line.set_xlabel("seconds since the capacity was set")
    line.set_ylabel("WCU/s admitted")
    line.set_ylim(bottom=0)
    line.set_title("5. capacity steps up 4x", fontsize=10)
    line.legend(fontsize=8)
    line.grid(alpha=0.3)
    common.save_figure(plt, fig, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="tiny sizes: check it works")
    args.add_argument("--seconds", type=float, default=None, help="a finite run's length")
    args.add_argument("--max-seconds", type=float, default=None, help="stop a run after this")
    opts = args.parse_args(argv)
    sizes = QUICK if opts.quick else FULL
    if opts.seconds:
        sizes = dataclasses.replace(
            sizes, seconds=opts.seconds, box=max(opts.seconds, SETTLE_S + 3)
        )
    if opts.max_seconds:
        sizes = dataclasses.replace(sizes, max_seconds=opts.max_seconds)
    common.begin(NAME)
    started = time.monotonic()
    with common.dynamodb_local() as ddb_url:
        proxy = Proxy(ddb_url)
        proxy.start()
        try:
            bench = Bench(ddb_url, proxy, sizes)
            common.warm_up(ddb_url, sizes.calibration)
            counts = calibrate(bench)
            results: dict[str, Any] = refusals(bench, counts)
            results["budget"] = budget(bench)
            results["step"] = step(bench)
            results["hot"] = hot(bench)
        finally:
            proxy.stop()
    report(results, counts, sizes)
    print(f"total {time.monotonic() - started:.0f} s")
    common.save_json(
        NAME,
        {
            "quick": opts.quick,
            "sizes": dataclasses.asdict(sizes),
            "item": "small catalog item, ~200 bytes, 1 WCU",
            "clients": [c.label for c in CLIENTS],
            "items_for_patterns_1_3": counts,
            "patterns": {
                "refuse_30": "FaultConfig(refuse_fraction=0.3)",
                "refuse_10": "FaultConfig(refuse_fraction=0.1)",
                "budget": f"FaultConfig(table_wcu_per_s={BUDGET_WCU:g})",
                "step": f"table_wcu_schedule=((0, {STEP_WCU[0]:g}), "
                f"({sizes.step_at:g}, {STEP_WCU[1]:g}))",
                "hot": f"table_wcu_per_s={HOT_TABLE_WCU:g}, hot_key={HOT_KEY!r}, "
                f"key_wcu_per_s={HOT_WCU:g}, one item in {HOT_SHARE}",
            },
            "targets": {
                r.key + ":" + r.field: f"{r.target[0]} {r.target[1]}" for r in ROWS if r.target
            },
            "results": results,
        },
    )
    chart(results, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
