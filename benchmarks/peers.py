"""How does ddb-loader's items/s compare with what people use instead — a `PutItem`
loop, boto3's `batch_writer`, aioboto3's `batch_writer` (1 and 16 concurrent), the AWS
SDK for JavaScript v3 (16 batches in flight) — and with the server's own ceiling, on
the same data and the same DynamoDB Local, in one run?

    python -m benchmarks.peers [--items 50000] [--rounds 3] [--put-time-limit 30]
        [--warmup 5000]

The table is PK/SK only (no GSI), fresh for each run, and dropped after a Scan COUNT
has checked that every item arrived. Every contender runs as a child process and times
its own reading + writing (interpreter start and client creation excluded). The
`PutItem` loop is time-boxed: its items/s is measured over the box and extrapolated.
The ceiling pre-builds and pre-signs every request before the clock starts, so it is
the server's speed, not a client's.

DynamoDB Local's speed drifts from run to run by as much as the gaps between the fast
contenders (one run measured the same ddb-loader command at 2,763 and 3,338 items/s,
and the JS SDK at 3,240 between them). So the fast ones — aioboto3 x16 and everything
after it — run `--rounds` times, interleaved: the listed order, then reversed (ABBA…),
so drift falls on all of them alike. items/s is the median of the rounds, with their
min–max beside it; `ddb-loader / this` divides medians. The same-round lines divide
ddb-loader's items/s by the JS SDK's in each round, which cancels the drift between
rounds. The three slow contenders run once: they are several times slower, so the
spread cannot change their place.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import common
from loader.config import DEFAULT_WORKERS

NAME = "peers"
LOADER = f"ddb-loader (default, {DEFAULT_WORKERS} workers)"
JS = "AWS SDK for JS v3 x16"
JS_CC = f"{JS} + ReturnConsumedCapacity"


@dataclass(frozen=True, slots=True)
class Contender:
    label: str
    table: str
    module: str  # benchmarks.<module> peer, or "loader" for the ddb-loader CLI
    args: tuple[str, ...] = ()
    time_boxed: bool = False
    once: bool = False  # slow: a minute each at the default size, and far behind the rest


def contenders(put_time_limit: float) -> list[Contender]:
    everyone = [
        Contender(
            "boto3 put_item loop",
            "put-loop",
            "peer_boto3",
            ("--mode", "put", "--time-limit", str(put_time_limit)),
            time_boxed=True,
            once=True,
        ),
        Contender(
            "boto3 batch_writer", "boto3-bw", "peer_boto3", ("--mode", "batch-writer"), once=True
        ),
        Contender(
            "aioboto3 batch_writer x1", "aioboto3-1", "peer_aioboto3", ("--writers", "1"), once=True
        ),
        Contender("aioboto3 batch_writer x16", "aioboto3-16", "peer_aioboto3", ("--writers", "16")),
        Contender(JS, "js-16", "peer_js", ("--in-flight", "16")),
        # The same work as ddb-loader, whose report needs what DynamoDB consumed: on
        # DynamoDB Local, ReturnConsumedCapacity costs the server ~20% of its speed.
        Contender(
            JS_CC, "js-16-cc", "peer_js", ("--in-flight", "16", "--consumed-capacity", "TOTAL")
        ),
        Contender(LOADER, "loader-default", "loader"),
        Contender("ddb-loader --workers 32", "loader-32", "loader", ("--workers", "32")),
        Contender(
            "server ceiling (raw aiohttp x32)", "ceiling", "peer_ceiling", ("--in-flight", "32")
        ),
    ]
    return [who for who in everyone if common.runnable(who.module, who.label)]


def run_one(
    url: str, source: Path, items: int, who: Contender, table: str, timeout_s: float
) -> dict[str, Any]:
    """Run one contender into its own fresh table; check the count; drop the table."""
    print(f"{who.label} ...", flush=True)
    common.create_table(url, table, gsi=False)
    if who.module == "loader":
        child, report = common.run_loader(
            source, table, url, *who.args, timeout_s=timeout_s, who=who.label
        )
        written, elapsed, calls = report["items_written"], report["elapsed_s"], report["requests"]
    else:
        command = common.peer_command(who.module, url, table, source, *who.args)
        child = common.run_child(command, timeout_s=timeout_s).check(who.label)
        line = child.last_json()
        written, elapsed, calls = line["items"], line["elapsed_s"], line["api_calls"]
    if not who.time_boxed and written != items:
        raise SystemExit(f"FAILED: {who.label} wrote {written:,} of {items:,} items")
    common.check_count(url, table, written, who.label)
    common.delete_table(url, table)
    rate = round(written / elapsed, 1) if elapsed else 0.0
    print(f"  {rate:,.0f} items/s", flush=True)
    return {
        "items": written,
        "elapsed_s": elapsed,
        "items_per_second": rate,
        "api_calls": calls,
        "wall_s": child.wall_s,
    }


def summarise(who: Contender, runs: list[dict[str, Any]], items: int) -> dict[str, Any]:
    """One contender's runs: medians, plus every round's items/s and their min and max."""
    rates = [r["items_per_second"] for r in runs]
    rate = statistics.median(rates)
    return {
        "tool": who.label,
        "items": runs[0]["items"],  # every run writes them all, bar the one time-boxed run
        "elapsed_s": round(statistics.median(r["elapsed_s"] for r in runs), 3),
        "items_per_second": round(rate, 1),
        "rounds": rates,
        "min": min(rates),
        "max": max(rates),
        "api_calls": statistics.median_low(r["api_calls"] for r in runs),
        "time_boxed": who.time_boxed,
        "extrapolated_s_for_all": round(items / rate, 1) if who.time_boxed and rate else None,
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
    }


def same_round(runs: dict[str, list[dict[str, Any]]], other: str) -> dict[str, Any] | None:
    """ddb-loader's items/s ÷ `other`'s, round by round, or None if `other` did not run."""
    if not runs.get(other):
        return None
    ratios = [
        common.ratio(mine["items_per_second"], theirs["items_per_second"])
        for mine, theirs in zip(runs[LOADER], runs[other], strict=True)
    ]
    return {"tool": other, "per_round": ratios, "median": round(statistics.median(ratios), 2)}


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--items", type=int, default=50_000)
    args.add_argument("--rounds", type=int, default=3, help="rounds of the fast contenders")
    args.add_argument("--put-time-limit", type=float, default=30.0, help="time-box (s)")
    args.add_argument("--warmup", type=int, default=5_000, help="items to warm the JVM up with")
    args.add_argument("--timeout", type=float, default=300, help="hard limit per contender (s)")
    opts = args.parse_args(argv)
    if opts.rounds < 1:
        args.error("--rounds must be at least 1")
    common.begin(NAME)
    source = common.catalog_file(opts.items)
    everyone = contenders(opts.put_time_limit)
    fast = [who for who in everyone if not who.once]
    runs: dict[str, list[dict[str, Any]]] = {who.label: [] for who in everyone}
    with common.dynamodb_local() as url:
        common.warm_up(url, opts.warmup)
        for who in everyone:
            if who.once:
                runs[who.label].append(
                    run_one(url, source, opts.items, who, who.table, opts.timeout)
                )
        for number in range(1, opts.rounds + 1):
            print(f"-- round {number} of {opts.rounds}", flush=True)
            for who in fast if number % 2 else fast[::-1]:
                table = f"{who.table}-{number}"
                runs[who.label].append(run_one(url, source, opts.items, who, table, opts.timeout))
    results = [summarise(who, runs[who.label], opts.items) for who in everyone]
    loader_rate = next(r["items_per_second"] for r in results if r["tool"] == LOADER)
    for r in results:
        r["loader_ratio"] = common.ratio(loader_rate, r["items_per_second"])
    pairwise = [p for p in (same_round(runs, JS_CC), same_round(runs, JS)) if p]
    report(results, pairwise, opts)
    return 0


def spread(result: dict[str, Any]) -> str:
    """`min–max (rounds)` of a contender's items/s, or `once`."""
    if len(result["rounds"]) == 1:
        return "once"
    return f"{result['min']:,.0f}–{result['max']:,.0f} ({len(result['rounds'])})"


def report(
    results: list[dict[str, Any]], pairwise: list[dict[str, Any]], opts: argparse.Namespace
) -> None:
    print()
    common.print_table(
        ["tool", "items", "seconds", "items/s", "rounds min–max", "API calls", "ddb-loader / this"],
        [
            [
                r["tool"] + (" *" if r["time_boxed"] else ""),
                r["items"],
                r["elapsed_s"],
                r["items_per_second"],
                spread(r),
                r["api_calls"],
                r["loader_ratio"],
            ]
            for r in results
        ],
    )
    print("items/s and seconds: medians of the rounds; beside them, the rounds' min–max")
    for r in results:
        if r["time_boxed"]:
            print(
                f"* time-boxed to {opts.put_time_limit:.0f} s: items/s measured over the box; "
                f"all {opts.items:,} items would take ~{r['extrapolated_s_for_all']:,.0f} s"
            )
    for p in pairwise:
        rounds = ", ".join(f"{x:.2f}" for x in p["per_round"])
        print(f"same round, {LOADER} / {p['tool']}: {rounds} (median {p['median']:.2f})")
    common.save_json(
        NAME,
        {
            "items": opts.items,
            "table": "PK/SK strings, no GSI, on-demand, fresh per run",
            "put_time_limit_s": opts.put_time_limit,
            "rounds": opts.rounds,
            "contenders": results,
            "pairwise": [{"loader": LOADER, **p} for p in pairwise],
        },
    )
    save_chart(
        results,
        f"{opts.items:,} catalog items into DynamoDB Local (PK/SK, no GSI): "
        f"median of {opts.rounds} interleaved rounds, whiskers min–max",
    )


def save_chart(results: list[dict[str, Any]], title: str) -> None:
    """common.save_bar_chart, plus whiskers from each contender's slowest to fastest round."""
    plt = common.pyplot()
    medians = [r["items_per_second"] for r in results]
    below = [m - r["min"] for m, r in zip(medians, results, strict=True)]
    above = [r["max"] - m for m, r in zip(medians, results, strict=True)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(results) + 2), 4.8))
    ax.bar(range(len(results)), medians, yerr=[below, above], capsize=3, color="#4878a8")
    for x, (m, r) in enumerate(zip(medians, results, strict=True)):
        ax.annotate(
            f"{m:,.0f}",
            (x, r["max"]),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(
        range(len(results)), [r["tool"] for r in results], rotation=20, ha="right", fontsize=8
    )
    ax.set_ylabel("items/s")
    ax.set_ylim(0, max((r["max"] for r in results), default=0) * 1.15 or 1)
    ax.set_title(title, fontsize=10)
    common.save_figure(plt, fig, NAME)


if __name__ == "__main__":
    sys.exit(main())
