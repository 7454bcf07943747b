"""`--processes 3` on one throttled table: do the writers of one job split it evenly?

    python -m benchmarks.writers_shared [--rounds 2] [--quick]

Each round, on the fault proxy of `benchmarks.patterns` in front of one DynamoDB Local, a
table admitting 1,500 WCU/s, one after another:

- **--processes 3**: one ddb-loader, adaptive, one file whose keys are prefixed by the
  writer they hash to (`F1#...` for the first, ...), so that the proxy can tell the
  writers' admitted WCU apart; each writer paces itself;
- **--processes 3 --max-wcu 1500**: the same, the writers sharing the 1,500 through the
  main process's lease service (`loader.lease`, as Spark tasks do);
- **3 processes**: pattern 8 of `benchmarks.patterns`, three ddb-loader processes started
  together, each with its own keys, nothing shared but the table.

Both time-boxed (30 s) and measured from 10 s after the first admitted write, as pattern
8 is: each writer's or process's WCU/s, the slowest's share of a fair share (500), and
the total's share of the table. Results: benchmarks/results/writers_shared.json and .png
(`--quick`: results/tmp/quick/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks import common, patterns
from loader.codec import KeySchema
from loader.parallel import route
from loader.sources import Record
from tests.faultproxy import FaultConfig

NAME = "writers_shared"
WRITERS = patterns.FLEET_SIZE
LOADER = dataclasses.replace(patterns.CLIENTS[0], table="ws-loader")
WRITERS_ADAPTIVE = dataclasses.replace(
    LOADER, label="--processes 3", command=(*LOADER.command, "--processes", "3")
)
WRITERS_LEASED = dataclasses.replace(
    LOADER,
    label="--processes 3 --max-wcu 1500",
    command=(*LOADER.command, "--processes", "3", "--max-wcu", f"{patterns.FLEET_WCU:g}"),
)
KINDS = ("--processes 3", "--processes 3 --max-wcu", "3 processes")
PATTERN = "writers"


def writers_file(table: str, count: int) -> Path:
    """`count` small catalog items, each partition key prefixed with the writer of
    `--processes 3` it hashes to in `table` (F1#, F2# or F3#); a key that hashes to
    another writer than its prefix says gets a suffix until it does not."""
    schemas = {table: KeySchema(table, patterns.HASH_KEY, "S")}

    def items() -> Iterator[dict[str, Any]]:
        for n, item in enumerate(common.small_products(count)):
            writer = n % WRITERS
            base = f"{patterns.fleet_prefix(writer + 1)}#{item[patterns.HASH_KEY]}"
            key, suffix = base, 0
            while True:
                probe = {**item, patterns.HASH_KEY: key}
                if route(Record("", 0, probe, b""), table, schemas, WRITERS) == writer:
                    break
                suffix += 1
                key = f"{base}#{suffix}"
            yield probe

    return patterns._cached(f"small-writers-{table}-{count}.jsonl", items())


def shares(view: patterns.Run, settle: float) -> dict[str, Any]:
    """Each prefix's admitted WCU/s from `settle` s after the first admitted write to the
    stop, as pattern 8 measures its processes."""
    end = view.at
    start = end if view.first is None else view.first + settle
    span = end - start
    fair = patterns.FLEET_WCU / WRITERS
    rates, seconds = [], []
    for n in range(1, WRITERS + 1):
        charges = view.by_prefix.get(patterns.fleet_prefix(n), [])
        rates.append(sum(w for t, w in charges if start <= t < end) / span if span > 0 else 0.0)
        seconds.append([round(w) for _, w in patterns._per_second(charges, int(end))])
    return {
        "wcu_per_s": [round(r, 1) for r in rates],
        "wcu_per_second": seconds,
        "used": round(sum(rates) / patterns.FLEET_WCU, 3),
        "worst_of_fair": round(min(rates) / fair, 3),
        "measured_s": [round(start, 2), round(end, 2)],
        "exit": view.child.returncode,
        "stopped": view.child.stopped,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a 10 s box: check it works")
    args = parser.parse_args(argv)
    sizes = patterns.QUICK if args.quick else patterns.FULL
    if args.quick:
        common.RESULTS = common.QUICK_RESULTS
    common.begin(NAME)
    box, settle = sizes.fleet_box, sizes.fleet_settle
    count = int(1.25 * box * patterns.FLEET_WCU)  # none finishes inside the box
    config = FaultConfig(table_wcu_per_s=patterns.FLEET_WCU)
    one_file = writers_file(f"{LOADER.table}-{PATTERN}", WRITERS * count)
    fleet_sources = [patterns.fleet_file(n, count) for n in range(1, WRITERS + 1)]
    rounds: list[dict[str, Any]] = []
    with common.dynamodb_local() as ddb_url:
        proxy = patterns.Proxy(ddb_url)
        proxy.start()
        proxy.tally_prefixes = True
        try:
            bench = patterns.Bench(ddb_url, proxy, sizes)
            common.warm_up(ddb_url, sizes.calibration)
            for n in range(args.rounds):
                print(f"round {n + 1} of {args.rounds}", flush=True)
                entry = {}
                for who, kind in zip((WRITERS_ADAPTIVE, WRITERS_LEASED), KINDS, strict=False):
                    (one,) = bench.run_together(
                        who, PATTERN, config, [one_file], WRITERS * count, box
                    )
                    entry[kind] = shares(one, settle)
                three = bench.run_together(LOADER, "fleet", config, fleet_sources, count, box)
                apart = shares(three[0], settle)
                apart["exit"] = [run.child.returncode for run in three]
                apart["stopped"] = [run.child.stopped for run in three]
                entry[KINDS[2]] = apart
                rounds.append(entry)
        finally:
            proxy.stop()
    rows = []
    for n, r in enumerate(rounds, 1):
        for kind in KINDS:
            e = r[kind]
            each = " / ".join(f"{w:,.0f}" for w in e["wcu_per_s"])
            rows.append((n, kind, each, f"{e['used']:.0%}", e["worst_of_fair"]))
    common.print_table(("round", "writers", "WCU/s each", "table used", "slowest / fair"), rows)
    common.save_json(
        NAME,
        {
            "quick": args.quick,
            "table_wcu_per_s": patterns.FLEET_WCU,
            "writers": WRITERS,
            "box_s": box,
            "settle_s": settle,
            "items_each": count,
            "rounds": rounds,
        },
    )
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.4))
    for k, kind in enumerate(KINDS):
        xs = [n + 1 + (k - 1) * 0.27 for n in range(len(rounds))]
        ax.bar(xs, [r[kind]["worst_of_fair"] for r in rounds], width=0.27, label=kind)
    ax.axhline(0.7, color="grey", linestyle="--", label="issue 13's target, 0.7")
    ax.set_xticks(range(1, len(rounds) + 1), [f"round {n}" for n in range(1, len(rounds) + 1)])
    ax.set_ylabel("slowest writer / fair share")
    ax.set_ylim(0, 1.1)
    ax.set_title(
        f"{WRITERS} writers on one {patterns.FLEET_WCU:,.0f} WCU/s table",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    common.save_figure(plt, fig, NAME)
    print(json.dumps([{k: r[k]["worst_of_fair"] for k in r} for r in rounds]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
