"""Three uncoordinated loaders on one table, in the pacing simulation's virtual time: how
evenly do they split it, and does the split hold as they run on?

    python -m benchmarks.fairness_sim [--seeds 20] [--seconds 160] [--stagger 0.5]

Each trio is three `tests.pacing_sim.Loader`s (their own `Pacer`, nothing shared) on a
`Table` of 1,500 WCU/s, run for `--seconds` of virtual time; trio n uses seeds 3n+1..3n+3
for its loaders and 3n+7 for the table, as `tests/test_pacing.py` does. For each trio and
each span (10-40 s, then 40-70, 70-100, ... to the end), the least-served loader's WCU/s
÷ a fair share (the span's total ÷ 3), and the total's share of the table. Virtual time:
the numbers do not depend on the machine or its load, and a run takes about a minute.
`--stagger S` starts the loaders S seconds apart, as processes started together are on a
real machine (results as `fairness_sim_stagger`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks import common
from tests.pacing_sim import Loader, Table, run

NAME = "fairness_sim"
CAPACITY = 1500.0
LOADERS = 3
FIRST_SPAN = (10.0, 40.0)  # test_pacing's span
SPAN_S = 30.0


def spans(seconds: float) -> list[tuple[float, float]]:
    out = [FIRST_SPAN]
    while out[-1][1] + SPAN_S <= seconds:
        out.append((out[-1][1], out[-1][1] + SPAN_S))
    return out


def trio(n: int, seconds: float, stagger: float) -> dict[str, Any]:
    first = 3 * n + 1
    loaders = [Loader(seed=first + k, start_s=k * stagger) for k in range(LOADERS)]
    run(Table(capacity=lambda t: CAPACITY, seed=first + 6), loaders, seconds)
    rows = []
    for start, end in spans(seconds):
        rates = [loader.rate(start, end) for loader in loaders]
        total = sum(rates)
        rows.append(
            {
                "span": [start, end],
                "wcu_per_s": [round(r, 1) for r in rates],
                "used": round(total / CAPACITY, 3),
                "worst_of_fair": round(min(rates) / (total / LOADERS), 3) if total else None,
            }
        )
    return {"seeds": list(range(first, first + LOADERS)), "table_seed": first + 6, "spans": rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="how many trios")
    parser.add_argument("--seconds", type=float, default=160.0, help="virtual seconds each")
    parser.add_argument("--stagger", type=float, default=0.0, help="seconds between starts")
    args = parser.parse_args(argv)
    name = f"{NAME}_stagger" if args.stagger else NAME
    common.begin(name)
    trios = [trio(n, args.seconds, args.stagger) for n in range(args.seeds)]
    summary = []
    for k, (start, end) in enumerate(spans(args.seconds)):
        worst = [t["spans"][k]["worst_of_fair"] for t in trios]
        used = [t["spans"][k]["used"] for t in trios]
        summary.append(
            {
                "span": f"{start:g}-{end:g} s",
                "worst_of_fair_min": min(worst),
                "worst_of_fair_median": round(statistics.median(worst), 3),
                "trios_at_or_over_0.7": sum(w >= 0.7 for w in worst),
                "used_min": min(used),
            }
        )
    common.print_table(
        ("span", "slowest / fair: min", "median", f"trios >= 0.7 (of {args.seeds})", "used: min"),
        [
            (s["span"], s["worst_of_fair_min"], s["worst_of_fair_median"],
             s["trios_at_or_over_0.7"], f"{s['used_min']:.0%}")
            for s in summary
        ],
    )  # fmt: skip
    common.save_json(
        name,
        {
            "capacity_wcu_per_s": CAPACITY,
            "loaders": LOADERS,
            "stagger_s": args.stagger,
            "seconds": args.seconds,
            "summary": summary,
            "trios": trios,
        },
    )
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for t in trios:
        points = [(sum(s["span"]) / 2, s["worst_of_fair"]) for s in t["spans"]]
        ax.plot([x for x, _ in points], [y for _, y in points], color="#4878a8", alpha=0.4)
    ax.axhline(0.7, color="grey", linestyle="--", label="issue 13's target, 0.7")
    ax.set_xlabel("virtual seconds (middle of each span)")
    ax.set_ylabel("least-served loader / fair share")
    ax.set_ylim(0, 1.05)
    started = f", started {args.stagger:g} s apart" if args.stagger else ""
    ax.set_title(
        f"{LOADERS} uncoordinated loaders, one {CAPACITY:,.0f} WCU/s table{started}", fontsize=10
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    common.save_figure(plt, fig, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
