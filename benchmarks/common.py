"""Helpers every benchmark shares: machine info, results (JSON + PNG), tables, cached
input files, DynamoDB Local tables, the zero-work endpoint, and child processes with
exact CPU and peak-memory accounting (`os.wait4` on the one child).

Nothing here talks to anything but 127.0.0.1: every client gets an explicit loopback
endpoint and dummy credentials (`use_dummy_credentials`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.catalog import products, write_jsonl
from tests.ddb_local import free_port, terminate

REPO = Path(__file__).resolve().parent.parent
# BENCH_RESULTS moves the output (run_all --quick writes to the git-ignored results/tmp/).
RESULTS = Path(os.environ.get("BENCH_RESULTS") or REPO / "benchmarks" / "results").resolve()
# Quick runs' results: tiny sizes, never to be mistaken for the real ones (git-ignored).
QUICK_RESULTS = REPO / "benchmarks" / "results" / "tmp" / "quick"
CACHE = REPO / ".cache" / "bench"
PY = sys.executable

Row = Sequence[object]


# ---------------------------------------------------------------- environment and machine


def use_dummy_credentials() -> dict[str, str]:
    """Point boto3 at dummy credentials (DynamoDB Local and the null endpoint take any),
    never at a real profile; children inherit the environment. Returns it."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        os.environ.pop(name, None)
    return dict(os.environ)


_LOAD_AT_START: list[float] = []


def begin(name: str) -> None:
    """Start a benchmark: dummy credentials, and a warning if the machine is already busy
    (other processes' CPU use skews every number here)."""
    use_dummy_credentials()
    load = list(os.getloadavg())
    _LOAD_AT_START[:] = load
    cores = os.cpu_count() or 1
    print(f"== {name}  ({cores} cores, load average {load[0]:.2f})", flush=True)
    if load[0] > cores * 0.5:
        print(
            f"WARNING: load average {load[0]:.1f} on {cores} cores before starting: "
            "other work on this machine will lower these numbers",
            flush=True,
        )


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, Python, date, load, commit."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = 0.0
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": [round(x, 2) for x in _LOAD_AT_START],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "commit": _commit(),
    }


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


# ---------------------------------------------------------------- output


def save_json(name: str, data: dict[str, Any]) -> Path:
    """Write `benchmarks/results/<name>.json` with the machine info added."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), **data}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"results: {_shown(path)}")
    return path


def _shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no screen), imported only when charting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_bar_chart(
    name: str, labels: Sequence[str], values: Sequence[float], *, ylabel: str, title: str
) -> Path:
    """A labelled bar chart at `benchmarks/results/<name>.png`."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(labels) + 2), 4.8))
    bars = ax.bar(range(len(labels)), values, color="#4878a8")
    best = max(values) if values else 0.0
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:,.0f}",
            (bar.get_x() + bar.get_width() / 2, value),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, best * 1.15 or 1)
    ax.set_title(title, fontsize=10)
    return save_figure(plt, fig, name)


def save_line_chart(
    name: str,
    series: dict[str, Sequence[tuple[float, float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    hline: tuple[float, str] | None = None,
) -> Path:
    """One line per series of (x, y) points at `benchmarks/results/<name>.png`."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for label, points in series.items():
        ax.plot([x for x, _ in points], [y for _, y in points], label=label, marker=".")
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle="--", label=hline[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(plt, fig, name)


def save_figure(plt: Any, fig: Any, name: str) -> Path:
    """Save `fig` as results/<name>.png and close it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"chart:   {_shown(path)}")
    return path


def print_table(headers: Row, rows: Sequence[Row]) -> None:
    """A plain aligned table; numbers right-aligned."""
    cells = [[_cell(v) for v in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        )
        print(line.rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ratio(a: float, b: float) -> float:
    """a / b, or 0.0 when b is 0 (a failed contender)."""
    return round(a / b, 2) if b else 0.0


# ---------------------------------------------------------------- input files


def catalog_file(count: int, *, small: bool = False) -> Path:
    """`.cache/bench/catalog-<count>.jsonl` (or `small-<count>.jsonl`): written once, reused.

    The file appears under its final name only once complete (write, then rename)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{'small' if small else 'catalog'}-{count}.jsonl"
    if not path.exists():
        started = time.monotonic()
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        items = small_products(count) if small else products(count)
        write_jsonl(str(partial), items)
        partial.replace(path)
        print(f"wrote {_shown(path)} ({time.monotonic() - started:.1f} s)", flush=True)
    return path


SMALL_FIELDS = ("PK", "SK", "sku", "name", "category", "brand", "price", "stock", "rating")


def small_products(count: int) -> Iterator[dict[str, Any]]:
    """Catalog items trimmed to ~200 bytes (1 WCU each, also in DynamoDB JSON)."""
    for item in products(count):
        small = {k: item[k] for k in SMALL_FIELDS}
        small["tags"] = item["tags"]
        yield small


# ---------------------------------------------------------------- DynamoDB Local tables


def ddb_client(url: str) -> Any:
    """A plain boto3 client for set-up and checks (not the thing measured)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 5}, read_timeout=120),
    )


def create_table(url: str, name: str, *, gsi: bool) -> str:
    """An on-demand PK/SK (strings) table, with the tutorial's GSI1 (ALL) if `gsi`."""
    names = ("PK", "SK", "GSI1PK", "GSI1SK") if gsi else ("PK", "SK")
    spec: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in names],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if gsi:
        spec["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "GSI1",
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    client = ddb_client(url)
    client.create_table(**spec)
    client.get_waiter("table_exists").wait(TableName=name)
    return name


def delete_table(url: str, name: str) -> None:
    """Drop a contender's table (frees DynamoDB Local's memory); missing is fine."""
    with contextlib.suppress(Exception):
        ddb_client(url).delete_table(TableName=name)


def scan_count(url: str, table: str) -> int:
    """Items in `table`, by a paginated Scan with Select=COUNT."""
    client = ddb_client(url)
    total = 0
    kwargs: dict[str, Any] = {"TableName": table, "Select": "COUNT"}
    while True:
        page = client.scan(**kwargs)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def check_count(url: str, table: str, expected: int, who: str) -> int:
    """Fail loudly unless the table holds exactly `expected` items."""
    found = scan_count(url, table)
    if found != expected:
        raise SystemExit(
            f"FAILED: {who}: table {table} holds {found:,} items, expected {expected:,}"
        )
    print(f"  verified: {table} holds {found:,} items (Scan COUNT)", flush=True)
    return found


def warm_up(url: str, items: int) -> None:
    """Load `items` catalog items into a scratch table and drop it, so the first
    contender does not pay for DynamoDB Local's JIT warm-up."""
    if items <= 0:
        return
    import boto3

    from benchmarks.peer_boto3 import read_items

    table = create_table(url, "warmup", gsi=True)
    started = time.monotonic()
    resource = boto3.resource("dynamodb", endpoint_url=url)
    with resource.Table(table).batch_writer() as writer:
        for item in read_items(catalog_file(items)):
            writer.put_item(Item=item)
    delete_table(url, table)
    print(f"warm-up: {items:,} items in {time.monotonic() - started:.1f} s", flush=True)


# ---------------------------------------------------------------- child processes


@dataclass(frozen=True, slots=True)
class ChildResult:
    """One finished child: exit, wall time, and its own rusage (incl. its reaped children)."""

    args: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float
    stdout: str
    stderr: str
    stopped: bool = False
    killed: bool = False
    rss_samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def last_json(self) -> dict[str, Any]:
        """The last stdout line that is a JSON object (the peers' result line)."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                parsed: dict[str, Any] = json.loads(line)
                return parsed
        raise SystemExit(f"FAILED: no result line from {self.args!r}:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        text = (self.stdout + "\n" + self.stderr).strip().splitlines()
        return "\n".join(text[-lines:])

    def check(self, who: str, ok: Sequence[int] = (0,)) -> ChildResult:
        """Fail loudly unless the child exited with one of `ok`."""
        if self.killed or self.returncode not in ok:
            raise SystemExit(f"FAILED: {who} exited with {self.returncode}:\n{self.tail()}")
        return self


def run_child(
    args: Sequence[str],
    *,
    timeout_s: float,
    stop_after_s: float | None = None,
    sample_rss_every_s: float | None = None,
    on_stop: Callable[[], None] | None = None,
) -> ChildResult:
    """Run `args` from the repo root; return its exit, wall time, CPU and peak RSS.

    `stop_after_s` sends SIGTERM then (time-box; the child may finish gracefully), after
    calling `on_stop()`; `timeout_s` is the hard limit, after which it is killed. Output
    goes to temporary files so a chatty child never blocks on a full pipe."""
    args = [str(a) for a in args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:
            status, usage, stopped, killed, samples = _reap(
                proc, started, timeout_s, stop_after_s, sample_rss_every_s, on_stop
            )
        finally:
            if proc.returncode is None:  # interrupted: never leave it running
                proc.kill()
                proc.wait()
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return ChildResult(
            args=args,
            returncode=status,
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            maxrss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            stopped=stopped,
            killed=killed,
            rss_samples=samples,
        )


def _reap(
    proc: subprocess.Popen[bytes],
    started: float,
    timeout_s: float,
    stop_after_s: float | None,
    sample_every_s: float | None,
    on_stop: Callable[[], None] | None,
) -> tuple[int, Any, bool, bool, list[tuple[float, float]]]:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    watched = psutil.Process(proc.pid) if sample_every_s else None
    samples: list[tuple[float, float]] = []
    next_sample = started
    stopped = killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage, stopped, killed, samples
        now = time.monotonic()
        if watched is not None and sample_every_s and now >= next_sample:
            with contextlib.suppress(psutil.Error):
                samples.append((now - started, watched.memory_info().rss / 2**20))
            next_sample = now + sample_every_s
        if stop_after_s is not None and not stopped and now - started >= stop_after_s:
            if on_stop is not None:
                on_stop()
            proc.send_signal(signal.SIGTERM)
            stopped = True
        if not killed and now - started >= timeout_s:
            proc.kill()
            killed = True
        time.sleep(0.02)


def loader_command(source: Path, table: str, url: str, *extra: str, report: Path) -> list[str]:
    """`python -m loader load SOURCE --table T --endpoint-url URL --no-progress --report R`."""
    return [
        PY,
        "-m",
        "loader",
        "load",
        str(source),
        "--table",
        table,
        "--endpoint-url",
        url,
        "--no-progress",
        "--report",
        str(report),
        *extra,
    ]


def run_loader(
    source: Path,
    table: str,
    url: str,
    *extra: str,
    timeout_s: float,
    who: str,
    sample_rss_every_s: float | None = None,
) -> tuple[ChildResult, dict[str, Any]]:
    """Run the ddb-loader CLI; fail loudly unless it exits 0; return it and its report."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        child = run_child(
            loader_command(source, table, url, *extra, report=report),
            timeout_s=timeout_s,
            sample_rss_every_s=sample_rss_every_s,
        ).check(who)
        data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return child, data


def peer_command(module: str, url: str, table: str, source: Path, *extra: str) -> list[str]:
    """`python -m benchmarks.<module> --endpoint URL --table T --source FILE ...`."""
    return [
        PY,
        "-m",
        f"benchmarks.{module}",
        "--endpoint",
        url,
        "--table",
        table,
        "--source",
        str(source),
        *extra,
    ]


# ---------------------------------------------------------------- servers


def wait_for_port(port: int, timeout_s: float, alive: Callable[[], bool]) -> None:
    """Wait until 127.0.0.1:`port` accepts connections (fail if `alive()` turns false)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server for port {port} exited at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout_s} s")


@contextlib.contextmanager
def null_endpoint() -> Iterator[str]:
    """`python -m benchmarks.null_endpoint PORT` as a child; yields its URL, always stops it."""
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "benchmarks.null_endpoint", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 15.0, lambda: proc.poll() is None)
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate(proc, 5)


@contextlib.contextmanager
def dynamodb_local() -> Iterator[str]:
    """DynamoDB Local (in memory, shared DB, no telemetry) on a free loopback port."""
    from tests.ddb_local import dynamodb_local as start

    with start() as server:
        print(f"DynamoDB Local on {server.url}", flush=True)
        yield server.url


def runnable(module: str, label: str) -> bool:
    """Whether a contender can run on this machine; says why not when it cannot (only the
    JS SDK peer has prerequisites outside the venv: Node.js >= 20 and the SDK)."""
    if module != "peer_js":
        return True
    from benchmarks.peer_js import missing

    why = missing()
    if why:
        print(f"skipped: {label}: {why}", flush=True)
    return why is None
