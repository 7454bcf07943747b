"""Which installed packages differ from the lock: `python tools/lock_drift.py LOCK`.

Run by `make test-latest` in a virtualenv of the newest releases, so that the suite's
result there comes with the list of upgrades it tested.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: str) -> dict[str, str]:
    """name -> version of every pin in a lock file (the first, where markers differ)."""
    pins: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = _PIN.match(line)
            if match:
                pins.setdefault(normal(match[1]), match[2])
    return pins


def main(path: str) -> int:
    pins = locked(path)
    installed = {normal(d.metadata["Name"]): d.version for d in metadata.distributions()}
    changed = [
        f"  {name}: {pins[name]} -> {version}"
        for name, version in sorted(installed.items())
        if name in pins and pins[name] != version
    ]
    added = [
        f"  {name} {v} (not in the lock)"
        for name, v in sorted(installed.items())
        if name not in pins and name != "ddb-loader"
    ]
    if not changed and not added:
        print(f"The newest releases are the ones in {path}.")
        return 0
    print(f"Installed releases that differ from {path} (`make lock` adopts the newest):")
    print("\n".join(changed + added))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
