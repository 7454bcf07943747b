"""Invariant 4, bounded memory: the loader's peak RSS does not grow with its input.
Measured on a child process (its own rusage), against the zero-work endpoint."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.catalog import products, write_jsonl
from tests.ddb_local import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def null_endpoint() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.null_endpoint", str(port)])
    time.sleep(1.0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


# The loader runs as a grandchild of a tiny launcher that reports its rusage: a child
# started straight from pytest would inherit pytest's own peak RSS through exec (the
# kernel keeps the larger of the old and new images in ru_maxrss).
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss_mb(source: Path, endpoint: str) -> float:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            "-m",
            "loader",
            "load",
            str(source),
            "--table",
            "bench",
            "--endpoint-url",
            endpoint,
            "--processes",
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1]) / 1024


@pytest.mark.timeout(240)
def test_peak_memory_does_not_grow_with_the_input(null_endpoint: str, tmp_path: Path) -> None:
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    write_jsonl(str(small), products(20_000))
    write_jsonl(str(large), products(200_000))  # 10x the input, ~128 MB
    small_mb = peak_rss_mb(small, null_endpoint)
    large_mb = peak_rss_mb(large, null_endpoint)
    assert large_mb <= small_mb * 1.25, (small_mb, large_mb)
    assert large_mb < 200
