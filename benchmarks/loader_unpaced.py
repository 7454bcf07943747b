"""ddb-loader through its library API with backoff and rate control turned off — the
"retry at once, as fast as possible" strawman for `benchmarks.throttled`.

    python -m benchmarks.loader_unpaced --endpoint URL --table T --source FILE.jsonl

`LoadConfig(adaptive=False, backoff_base_s=0.001, backoff_cap_s=0.001, max_retries=1000)`;
prints the load report as one JSON line when (if) it finishes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import loader
from loader.config import DEFAULT_WORKERS


async def unpaced(endpoint: str, table: str, source: str, workers: int) -> loader.LoadReport:
    config = loader.LoadConfig(
        sources=(source,),
        table=table,
        endpoint_url=endpoint,
        workers=workers,
        adaptive=False,
        backoff_base_s=0.001,
        backoff_cap_s=0.001,
        max_retries=1000,
    )
    return await loader.load(config)


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--endpoint", required=True)
    args.add_argument("--table", required=True)
    args.add_argument("--source", required=True)
    args.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    opts = args.parse_args(argv)
    coro = unpaced(opts.endpoint, opts.table, opts.source, opts.workers)
    try:
        import uvloop
    except ImportError:  # the CLI runs on uvloop where it can; do the same
        report = asyncio.run(coro)
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            report = runner.run(coro)
    print(json.dumps(report.to_json()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
