"""Issue 3, item 6: SIGINT/SIGTERM stop a load cleanly (finish in-flight batches, write
the checkpoint, print the summary, exit 3); a second signal stops at once.

The loader runs as a subprocess through the fault proxy, whose added latency keeps
requests in flight long enough to signal the process mid-load. Read-back is direct
from DynamoDB Local.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.conftest import (
    TableFactory,
    records_done,
    run_cli,
    running_loader,
    scan_table,
    wait_until,
)
from tests.ddb_local import DynamoDBLocal
from tests.faultproxy import FaultConfig, FaultProxy

pytestmark = pytest.mark.integration

_deserialize = TypeDeserializer().deserialize
Key = tuple[str, str]


def write_input(path: Path, total: int) -> dict[Key, dict[str, Any]]:
    """`total` records of ~260 bytes; returns what the table must hold afterwards."""
    lines = [
        json.dumps(
            {"PK": f"ITEM#{i:06d}", "SK": "A", "n": i, "name": f"item {i}", "pad": "x" * 200}
        )
        for i in range(total)
    ]
    path.write_text("\n".join(lines) + "\n")
    values = [json.loads(x, parse_float=Decimal, parse_int=Decimal) for x in lines]
    return {(v["PK"], v["SK"]): v for v in values}


def stored(url: str, table: str) -> dict[Key, dict[str, Any]]:
    items = [{k: _deserialize(v) for k, v in item.items()} for item in scan_table(url, table)]
    return {(item["PK"], item["SK"]): item for item in items}


def start_load(*args: str) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    return running_loader("load", *args, "--no-progress")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_cleanly_with_a_checkpoint_and_resume_completes_the_table(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    proxy: FaultProxy,
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    total = 10_000
    source, checkpoint = tmp_path / "in.jsonl", tmp_path / "checkpoint.json"
    expected = write_input(source, total)
    table = make_table(gsi=False)
    # 0.3 s a request: 16 workers write ~1,300 items/s, so the load lasts ~8 s.
    proxy.config = FaultConfig(latency_s=0.3)
    with start_load(
        str(source), "--table", table, "--endpoint-url", proxy.url, "--workers", "16",
        "--checkpoint", str(checkpoint), "--report", str(tmp_path / "stopped.json"),
    ) as process:  # fmt: skip
        wait_until(lambda: records_done(checkpoint) > 0, process)
        signalled = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
        stopped_after = time.monotonic() - signalled

    assert process.returncode == 3, err[-2000:]
    assert stopped_after < 5, f"in-flight batches take 0.3 s; stopping took {stopped_after:.1f} s"
    assert "Traceback" not in err
    assert signum.name in err
    assert "records read" in out, out  # the summary
    assert "items written" in out, out
    assert "aborted" in out, out
    done = records_done(checkpoint)
    assert 0 < done < total
    stopped = json.loads((tmp_path / "stopped.json").read_text())
    assert stopped["items_written"] >= done
    assert stopped["items_written"] + stopped["rejected"] <= stopped["records_read"]
    # Every record below the checkpoint is in the table already.
    partial = stored(ddb_local.url, table)
    below = [(f"ITEM#{i:06d}", "A") for i in range(done)]
    assert all(partial.get(k) == expected[k] for k in below)

    report = tmp_path / "resumed.json"
    run_cli(
        "load", str(source), "--table", table, "--endpoint-url", ddb_local.url,
        "--checkpoint", str(checkpoint), "--resume", "--report", str(report), "--no-progress",
        check_status=0,
    )  # fmt: skip

    assert stored(ddb_local.url, table) == expected
    numbers = json.loads(report.read_text())
    assert numbers["skipped_on_resume"] == done
    assert numbers["items_written"] + numbers["skipped_on_resume"] == total
    assert numbers["records_read"] == total


def test_a_second_signal_stops_at_once(
    make_table: TableFactory, proxy: FaultProxy, tmp_path: Path
) -> None:
    source, checkpoint = tmp_path / "in.jsonl", tmp_path / "checkpoint.json"
    write_input(source, 2_000)
    table = make_table(gsi=False)
    # Every write takes 8 s: after the first signal the loader would wait for them.
    proxy.config = FaultConfig(latency_s=8.0)
    proxy.reset_stats()
    with start_load(
        str(source), "--table", table, "--endpoint-url", proxy.url,
        "--checkpoint", str(checkpoint),
    ) as process:  # fmt: skip
        # DescribeTable, then at least one BatchWriteItem held by the proxy.
        wait_until(lambda: proxy.stats().requests >= 2, process)
        process.send_signal(signal.SIGTERM)
        # The loader says it heard the first signal, and is still waiting for its writes.
        assert process.stderr is not None
        heard = ""
        while signal.SIGTERM.name not in heard:
            line = process.stderr.readline()
            assert line, f"the load ended without a word of the signal: {heard}"
            heard += line
        assert process.poll() is None, "the first signal waits for the writes in flight"
        second = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
        err = heard + rest
        stopped_after = time.monotonic() - second

    assert process.returncode == 3, f"exit {process.returncode} after {stopped_after:.1f} s: {err}"
    assert stopped_after < 3, f"the second signal took {stopped_after:.1f} s"
    assert "Traceback" not in err, err[-3000:]
    assert "at once" in err
    if checkpoint.exists():
        json.loads(checkpoint.read_text())  # still whole
