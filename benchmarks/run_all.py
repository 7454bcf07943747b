"""`make bench`: every benchmark with its defaults, one after another, each in its own
process (one failure does not stop the rest); then a summary of the headline numbers
in `benchmarks/results/summary.json`.

    python -m benchmarks.run_all [--quick] [--only peers memory ...] [--timeout 900]

`--quick` runs tiny sizes to check the suite works (the numbers mean little); its
results go to the git-ignored `benchmarks/results/tmp/quick/`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import common

FULL: dict[str, list[str]] = {
    "put_vs_batch": [],
    "peers": [],
    "client_cost": [],
    "processes": [],
    "memory": [],
    "throttled": [],
}
QUICK: dict[str, list[str]] = {
    "put_vs_batch": ["--items", "2000", "--warmup", "1000"],
    "peers": ["--items", "2000", "--warmup", "1000", "--put-time-limit", "5", "--rounds", "2"],
    "client_cost": ["--items", "5000"],
    "processes": ["--items", "5000", "--rounds", "1"],
    "memory": ["--sizes", "2000", "20000"],
    "throttled": ["--seconds", "8"],
}

QUICK_RESULTS = common.QUICK_RESULTS


def run_script(name: str, args: list[str], timeout_s: float) -> tuple[int, float]:
    """Run `python -m benchmarks.<name>` with its output on ours; (exit status, seconds).

    It gets its own process group; past the timeout it is sent SIGINT (its `finally`
    blocks stop the servers it started), and the group is killed if that is not enough."""
    command = [common.PY, "-m", f"benchmarks.{name}", *args]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=common.REPO, start_new_session=True)
    try:
        status = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"run_all: {name} ran past {timeout_s:.0f} s: interrupting it", flush=True)
        status = _stop(proc)
    except KeyboardInterrupt:
        _stop(proc)
        raise
    return status, time.monotonic() - started


def _stop(proc: subprocess.Popen[bytes]) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


# ---------------------------------------------------------------- headline numbers


def _by_tool(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["tool"]: c for c in data["contenders"]}


def put_vs_batch(data: dict[str, Any]) -> dict[str, Any]:
    put, batch = data["contenders"]
    return {
        "put_item_items_per_s": put["items_per_second"],
        "ddb_loader_items_per_s": batch["items_per_second"],
        "speedup": data["speedup"],
        "api_call_ratio": data["api_call_ratio"],
        "line": f"ddb-loader {batch['items_per_second']:,.0f} items/s vs PutItem loop "
        f"{put['items_per_second']:,.0f}: {data['speedup']}x, "
        f"{data['api_call_ratio']}x fewer API calls",
    }


def peers(data: dict[str, Any]) -> dict[str, Any]:
    tools = data["contenders"]
    loader = next(c for c in tools if c["tool"].startswith("ddb-loader (default"))
    ceiling = next(c for c in tools if c["tool"].startswith("server ceiling"))
    others = [c for c in tools if not c["tool"].startswith(("ddb-loader", "server ceiling"))]
    best = max(others, key=lambda c: c["items_per_second"])
    rates = {c["tool"]: c["items_per_second"] for c in tools}  # medians of the rounds
    of_ceiling = common.ratio(loader["items_per_second"], ceiling["items_per_second"])
    # Same-round ratios cancel DynamoDB Local's drift between rounds (absent before rounds).
    same_round = {p["tool"]: p["median"] for p in data.get("pairwise", [])}
    rounds = data.get("rounds", 1)
    return {
        "items_per_s": rates,
        "best_peer": best["tool"],
        "vs_best_peer": best["loader_ratio"],
        "share_of_ceiling": of_ceiling,
        "same_round_median": same_round,
        "line": f"ddb-loader {loader['items_per_second']:,.0f} items/s"
        + (f" (median of {rounds} rounds)" if rounds > 1 else "")
        + f" = {best['loader_ratio']}x {best['tool']}, "
        f"{of_ceiling:.0%} of the server ceiling ({ceiling['items_per_second']:,.0f})"
        + "".join(f"; same round {ratio}x {tool}" for tool, ratio in same_round.items()),
    }


def client_cost(data: dict[str, Any]) -> dict[str, Any]:
    tools = _by_tool(data)
    per_item = {t: c["us_per_item"] for t, c in tools.items()}
    marginal = {t: c["marginal_us_per_item"] for t, c in tools.items()}
    loader = tools["ddb-loader (defaults)"]
    return {
        "us_per_item": per_item,
        "marginal_us_per_item": marginal,
        "line": "µs CPU/item: "
        + ", ".join(f"{t} {v:,.0f}" for t, v in per_item.items())
        + f" (ddb-loader marginal {loader['marginal_us_per_item']:,.0f})",
    }


def processes(data: dict[str, Any]) -> dict[str, Any]:
    medians, ratios = data["medians"], data["ratios"]
    base, best = min(ratios, key=int), max(ratios, key=int)
    return {
        "ratios": ratios,
        "line": f"--processes {best}: {ratios[best]}x the items/s of {base} "
        f"({medians[best]['items_per_second']:,.0f} vs {medians[base]['items_per_second']:,.0f})",
    }


def memory(data: dict[str, Any]) -> dict[str, Any]:
    runs = data["runs"]
    peaks = {r["items"]: r["peak_rss_mb"] for r in runs}
    return {
        "peak_rss_mb": peaks,
        "ratio": data["ratio"],
        "passed": data["passed"],
        "line": "peak RSS "
        + " / ".join(f"{n:,} items {mb:,.0f} MB" for n, mb in peaks.items())
        + f": {data['ratio']}x ({'PASS' if data['passed'] else 'FAIL'})",
    }


def throttled(data: dict[str, Any]) -> dict[str, Any]:
    tools = data["contenders"]
    return {
        "budget_share_after_5s": {c["tool"]: c["budget_share_after_5s"] for c in tools},
        "wasted_requests_per_item": {c["tool"]: c["wasted_requests_per_item"] for c in tools},
        "settled_throttled_share": {c["tool"]: c.get("settled_throttled_share") for c in tools},
        "line": "budget used / settled requests throttled / wasted req per item: "
        + ", ".join(
            f"{c['tool']} {c['budget_share_after_5s']:.0%} / "
            f"{c.get('settled_throttled_share') or 0:.1%} / {c['wasted_requests_per_item']}"
            for c in tools
        ),
    }


HEADLINES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "put_vs_batch": put_vs_batch,
    "peers": peers,
    "client_cost": client_cost,
    "processes": processes,
    "memory": memory,
    "throttled": throttled,
}


def headline(name: str, status: int, since: float) -> dict[str, Any]:
    """The benchmark's headline numbers from its results file, if this run wrote it."""
    path = common.RESULTS / f"{name}.json"
    if not path.exists() or path.stat().st_mtime < since:
        return {"line": f"no results written (exit {status})"}
    try:
        return HEADLINES[name](json.loads(path.read_text(encoding="utf-8")))
    except (KeyError, ValueError, StopIteration, TypeError) as exc:
        return {"line": f"results unreadable: {exc!r}"}


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="tiny sizes: check the suite works")
    args.add_argument("--only", nargs="+", choices=list(FULL), help="run just these")
    args.add_argument("--timeout", type=float, default=900, help="per benchmark (s)")
    opts = args.parse_args(argv)
    common.begin("run_all" + (" (quick)" if opts.quick else ""))
    sizes = QUICK if opts.quick else FULL
    if opts.quick:  # never mistaken for real results: the git-ignored tmp folder
        common.RESULTS = QUICK_RESULTS
        os.environ["BENCH_RESULTS"] = str(QUICK_RESULTS)
    summary: dict[str, Any] = {}
    for name in opts.only or list(FULL):
        since = time.time()
        status, seconds = run_script(name, sizes[name], opts.timeout)
        summary[name] = {
            "status": "ok" if status == 0 else f"failed (exit {status})",
            "seconds": round(seconds, 1),
            "args": sizes[name],
            **headline(name, status, since),
        }
    print("\n== summary" + (" (quick: tiny sizes, numbers mean little)" if opts.quick else ""))
    common.print_table(
        ["benchmark", "status", "s", "headline"],
        [[n, s["status"], s["seconds"], s["line"]] for n, s in summary.items()],
    )
    common.save_json("summary", {"quick": opts.quick, "benchmarks": summary})
    return 0 if all(s["status"] == "ok" for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
