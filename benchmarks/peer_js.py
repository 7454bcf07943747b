"""Peer: the AWS SDK for JavaScript v3 (`benchmarks/peer_js.cjs`), launched like the Python peers.

    python -m benchmarks.peer_js --endpoint URL --table T --source FILE.jsonl \
        [--in-flight 16] [--items N] [--consumed-capacity NONE|TOTAL]

Replaces itself with `node benchmarks/peer_js.cjs <the same arguments>` (`os.execv`: the
same process, so `common.run_child`'s `os.wait4` rusage is node's own CPU and peak RSS,
plus this launcher's interpreter start). node >= 20 and `@aws-sdk/client-dynamodb` in
`.cache/js` are needed: `make js-sdk` installs the SDK. The JSON result line is node's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("peer_js.cjs")
JS_HOME = Path(os.environ.get("DDB_JS_HOME") or SCRIPT.parent.parent / ".cache" / "js")
SDK = JS_HOME / "node_modules" / "@aws-sdk" / "client-dynamodb" / "package.json"
MIN_NODE = 20


def missing() -> str | None:
    """Why this peer cannot run here (no node >= 20, no SDK), or None when it can."""
    found = os.environ.get("NODE") or shutil.which("node")
    if not found:
        return "node is not installed (Node.js >= 20 is needed)"
    version = subprocess.run(
        [found, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    major = int(version.lstrip("v").split(".")[0] or 0) if version[1:2].isdigit() else 0
    if major < MIN_NODE:
        return f"node {version or '?'} is too old: Node.js >= 20 is needed"
    if not SDK.exists():
        return f"@aws-sdk/client-dynamodb is not in {JS_HOME}: run make js-sdk"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    why = missing()
    if why:
        raise SystemExit(f"peer_js: {why}")
    binary = os.environ.get("NODE") or shutil.which("node")
    assert binary is not None
    sys.stdout.flush()
    os.execv(binary, [binary, str(SCRIPT), *args])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
