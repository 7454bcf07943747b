"""What a person sees on a terminal: the progress line drawn through a pseudo-terminal,
its last state, and what a stopped job says to do next."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TableFactory, run_cli
from tests.ddb_local import DynamoDBLocal

pytestmark = pytest.mark.integration


def test_the_last_line_on_a_terminal_agrees_with_the_summary(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"PK": "p{i}", "SK": "a", "n": {i}}}\n' for i in range(30_000)))
    table = make_table(gsi=False)
    leader, follower = pty.openpty()
    try:
        load = subprocess.Popen(
            [sys.executable, "-m", "loader", "load", str(source), "--table", table,
             "--endpoint-url", ddb_local.url, "--max-wcu", "10000"],
            stdout=subprocess.PIPE, stderr=follower, text=True, cwd=tmp_path,
        )  # fmt: skip
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the load ended
                break
            if not chunk:
                break
            seen += chunk
        summary_text, _ = load.communicate(timeout=120)
    finally:
        os.close(leader)
    assert load.returncode == 0, seen.decode()[-2000:]

    # What stays on the screen: of the last line, what was drawn after its last \r.
    screen = seen.decode().replace("\r\n", "\n").rstrip("\n").split("\n")[-1]
    lines = [part.replace("\x1b[K", "") for part in screen.split("\r") if part]
    assert len(lines) > 2, f"the line was drawn once only: {screen!r}"
    last = lines[-1].strip()
    written = re.search(r"items written\s+([\d,]+)", summary_text)
    assert written is not None, summary_text
    assert last.startswith("0:00:"), last
    assert "[####################] 100.0%" in last
    assert f"{written[1]} written, average " in last
    assert last.endswith("ok")
    assert written[1] == "30,000"
    middle = lines[1]
    assert "now " in middle, middle
    assert "average " in middle, middle


def test_a_stopped_job_says_where_its_checkpoint_is_and_the_command_that_goes_on(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"PK": "a", "SK": "1"}\n{"PK": "b"}\n{"PK": "c", "SK": "1"}\n')
    table = make_table(gsi=False)
    checkpoint = tmp_path / "load.ckpt"
    args = ["load", str(source), "--table", table, "--endpoint-url", ddb_local.url,
            "--checkpoint", str(checkpoint), "--max-rejects", "0", "--no-progress"]  # fmt: skip

    result = run_cli(*args, check_status=3)

    assert f"the checkpoint is saved in {checkpoint}; to go on:" in result.stderr
    command = result.stderr.rstrip().splitlines()[-1].strip()
    assert command.startswith("ddb-loader load ")
    assert command.endswith("--resume")
    assert checkpoint.exists()
