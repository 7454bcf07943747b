"""The `ddb-loader` command: flags → `LoadConfig`, run under uvloop, progress and summary.

Only this module reads flags and the environment, prints, and picks exit statuses:
0 all written, 1 finished with rejects, 2 usage or configuration error, 3 aborted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from loader import local
from loader.api import FORMATS, get, load, to_plain, verify
from loader.config import DEFAULT_QUEUE_SIZE, DEFAULT_WORKERS, LoadConfig
from loader.display import Progress, dry_run_summary, summary
from loader.errors import (
    ConfigError,
    LoaderError,
    SourceError,
)
from loader.runtime import run

EXIT_OK, EXIT_REJECTS, EXIT_CONFIG, EXIT_ABORTED = 0, 1, 2, 3
PRICE_PER_MILLION_WRU = 0.625


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        # argparse's own exit status for usage errors is 2 too; keep its one-line form.
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"ddb-loader: {message}\n")


def _inputs(parser: argparse.ArgumentParser) -> None:
    """What every command that reads records takes: the input, the table, the connection."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="file, file.gz, folder or -")
    parser.add_argument(
        "--table",
        "--table-name",  # the AWS CLI's name
        dest="table",
        help="target table (request-items files name their own)",
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", *FORMATS],
        help="input format (default auto: by extension, a .json file by its first line)",
    )
    parser.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:8000 for DynamoDB Local")
    parser.add_argument("--region", help="AWS Region (default: the profile's, or AWS_REGION)")
    parser.add_argument("--profile", help="a profile of ~/.aws/config (default: AWS_PROFILE)")
    parser.add_argument(
        "--s3-endpoint-url",
        help="for s3:// sources in an S3-compatible store (default: AWS_ENDPOINT_URL_S3, or S3)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"concurrent requests (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=DEFAULT_QUEUE_SIZE,
        help=f"batches buffered ahead of the workers (default {DEFAULT_QUEUE_SIZE})",
    )
    parser.add_argument(
        "--give-up-after",
        metavar="DURATION",
        default="15m",
        help="stop (with the checkpoint) when DynamoDB has not answered at all for this "
        "long: seconds, or 90s, 15m, 1h (default 15m)",
    )
    parser.add_argument(
        "--rejects",
        metavar="FILE",
        help="JSONL file for rejected records (default: ddb-loader-rejects-<UTC time>-<pid>"
        ".jsonl here, created at the first reject)",
    )
    parser.add_argument("--max-rejects", type=int, metavar="N", help="abort after N rejects")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress line on standard error"
    )
    parser.add_argument(
        "--csv-type",
        action="append",
        default=[],
        metavar="COLUMN=S|N|BOOL|JSON",
        help="a CSV column's type (default S; key columns take the table's key type)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ATTR=TEMPLATE",
        help="build an attribute from fields, e.g. PK=PRODUCT#{sku}",
    )


def _writes(parser: argparse.ArgumentParser) -> None:
    """What only the commands that write take."""
    parser.add_argument("--max-wcu", type=float, help="cap consumed write capacity per second")
    parser.add_argument(
        "--max-retries",
        type=int,
        default=10,
        help="refusals in a row of one write (throttled, unprocessed) with nothing else "
        "written between them, before the job stops with its checkpoint (default 10)",
    )
    parser.add_argument("--checkpoint", metavar="FILE", help="record progress for --resume")
    parser.add_argument("--resume", action="store_true", help="skip what --checkpoint says is done")
    parser.add_argument("--report", metavar="FILE.json", help="write the report as JSON")


EPILOG = """\
examples:
  ddb-loader load catalog.jsonl --table products --region eu-west-1
  ddb-loader load big.jsonl.gz --table products --checkpoint load.ckpt   # then: ... --resume
  ddb-loader load items.csv --table products --csv-type price=N --set PK=PRODUCT#{sku}
  ddb-loader load batch-products.json            # an AWS CLI request-items file
  ddb-loader verify catalog.jsonl --table products --compare
  ddb-loader load catalog.jsonl --table t --endpoint-url http://127.0.0.1:8000  # DynamoDB Local

exit status:
  0  everything written (verify: everything there)
  1  finished with rejects (verify: differences found)
  2  usage or configuration error: nothing was written
  3  stopped early (a signal, --max-rejects, --give-up-after, or a write DynamoDB kept
     refusing past --max-retries): --resume goes on
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ddb-loader",
        description="Bulk-load DynamoDB tables, fast and safely.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ddb-loader {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    load = _subcommand(commands, "load", "write every record (BatchWriteItem)")
    _inputs(load)
    _writes(load)
    load.add_argument("--dry-run", action="store_true", help="validate and estimate; write nothing")
    load.add_argument(
        "--price-per-million-wru",
        type=float,
        default=PRICE_PER_MILLION_WRU,
        metavar="USD",
        help="on-demand price used by --dry-run (default 0.625: us-east-1 standard tables, "
        "price as of 2024-11-01)",
    )
    load.add_argument("--create-table", action="store_true", help="create the table (on-demand)")
    load.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="NAME:TYPE",
        help="with --create-table: the partition key, then the sort key (TYPE S, N or B)",
    )
    load.add_argument(
        "--processes",
        type=int,
        default=None,
        help="writer processes (default: one per core for inputs of 64 MB or more, else 1)",
    )
    delete = _subcommand(commands, "delete", "delete the key of every record")
    _inputs(delete)
    _writes(delete)
    check = _subcommand(commands, "verify", "read every record back (BatchGetItem)")
    _inputs(check)
    check.add_argument("--compare", action="store_true", help="compare whole items, not just keys")
    get = commands.add_parser("get", help="read the keys of a batch-get-item request file")
    get.add_argument("request", metavar="REQUEST.json", help="the AWS CLI's --request-items file")
    get.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:8000 for DynamoDB Local")
    get.add_argument("--region", help="AWS Region (default: the profile's, or AWS_REGION)")
    get.add_argument("--profile", help="a profile of ~/.aws/config (default: AWS_PROFILE)")
    get.add_argument("--ddb-json", action="store_true", help="print items in DynamoDB JSON")
    here = commands.add_parser(
        "local", help="run DynamoDB Local here, in the foreground, to try loads on"
    )
    here.add_argument("--port", type=int, default=8000, help="its port (default 8000)")
    here.add_argument(
        "--db-path", metavar="DIR", help="keep the tables in DIR (default: in memory)"
    )
    return parser


def _subcommand(commands: Any, name: str, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("ddb-loader")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "(not installed)"


def _pairs(values: Sequence[str], flag: str, sep: str = "=") -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, found, rest = value.partition(sep)
        if not found or not name:
            raise ConfigError(f"{flag} {value!r}: expected NAME{sep}VALUE.")
        pairs.append((name, rest))
    return pairs


_UNITS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def _seconds(value: str, flag: str) -> float:
    """A duration: seconds, or a number with s, m (min) or h."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|m|min|h)?\s*", value)
    if found is None:
        raise ConfigError(f"{flag} {value!r}: expected a duration, e.g. 900, 90s, 15m, 1h.")
    return float(found[1]) * _UNITS[found[2]]


def config_from(args: argparse.Namespace) -> LoadConfig:
    """The LoadConfig the flags describe.

    Raises:
        ConfigError: a flag's value is malformed or out of range.
    """
    extra: dict[str, Any] = {}
    if args.command == "load":
        extra = {
            "dry_run": args.dry_run,
            "create_table": args.create_table,
            "keys": tuple((n, t.upper()) for n, t in _pairs(args.key, "--key", ":")),
            "processes": args.processes or _auto_processes(args.sources),
        }
    return LoadConfig(
        sources=tuple(args.sources),
        table=args.table,
        format=args.format,
        mode="delete" if args.command == "delete" else "put",
        endpoint_url=args.endpoint_url,
        region=args.region,
        profile=args.profile,
        s3_endpoint_url=getattr(args, "s3_endpoint_url", None),
        workers=args.workers,
        queue_size=args.queue_size,
        max_wcu=getattr(args, "max_wcu", None),  # verify has none of the write knobs
        max_retries=getattr(args, "max_retries", 10),
        give_up_after_s=_seconds(args.give_up_after, "--give-up-after"),
        rejects=args.rejects or default_rejects(),
        max_rejects=args.max_rejects,
        checkpoint=getattr(args, "checkpoint", None),
        resume=getattr(args, "resume", False),
        report=getattr(args, "report", None),
        progress=not args.no_progress,
        csv_types={c: t.upper() for c, t in _pairs(args.csv_type, "--csv-type")},
        templates=tuple(_pairs(args.set, "--set")),
        **extra,
    )


def default_rejects() -> str:
    """Where rejects go without --rejects, so none vanish: the working folder, named for
    the time and the process, so no job's file is another's (a resumed job's too: an
    earlier run's rejects may since have been fixed and loaded); created only at a reject."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"ddb-loader-rejects-{stamp}-{os.getpid()}.jsonl"


# A writer process pays its start (a fresh interpreter and its imports) before it
# writes anything: below this much input one process finishes first
# (benchmarks/processes.py finds the crossing; benchmarks/README.md has its figures).
AUTO_PROCESSES_BYTES = 64 << 20


def _auto_processes(sources: Sequence[str]) -> int:
    total = 0
    for path in sources:
        if path == "-" or path.startswith("s3://"):
            return 1
        with contextlib.suppress(OSError):
            total += os.path.getsize(path)
    return (os.cpu_count() or 1) if total >= AUTO_PROCESSES_BYTES else 1


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `ddb-loader` command; exits with the job's status."""
    logging.basicConfig(format="ddb-loader: %(message)s", level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("ddb_loader").setLevel(logging.INFO)  # ours: what a person should know
    args = build_parser().parse_args(argv)
    try:
        if args.command == "get":
            status = run(_get(args))
        elif args.command == "local":
            status = local.serve(args.port, db_path=args.db_path)
        else:
            status = run(_command(args, config_from(args)))
    except asyncio.CancelledError:
        print(
            "ddb-loader: stopped at once; the checkpoint holds what was finished", file=sys.stderr
        )
        status = EXIT_ABORTED
    except (ConfigError, SourceError) as exc:
        print(f"ddb-loader: {exc}", file=sys.stderr)
        status = EXIT_CONFIG
    except LoaderError as exc:
        print(f"ddb-loader: {exc}", file=sys.stderr)
        status = EXIT_ABORTED
    sys.exit(status)


async def _command(args: argparse.Namespace, config: LoadConfig) -> int:
    if args.command == "verify":
        result = await verify(config, compare=args.compare)
        for problem in result.problems:
            print(json.dumps(problem))
        print(
            f"checked {result.checked:,} keys of {result.records_read:,} records: "
            f"{result.missing:,} missing, {result.different:,} different, "
            f"{result.rejected:,} unreadable records; {result.consumed_rcu:,.1f} RCU, "
            f"{result.elapsed_s:.2f} s",
            file=sys.stderr,
        )
        if result.stopped:
            print(f"ddb-loader: verify stopped short, the rest unchecked: {result.stopped}",
                  file=sys.stderr)  # fmt: skip
        return result.exit_status
    progress = Progress(sys.stderr, dry_run=config.dry_run) if config.progress else None
    stop = asyncio.Event()
    _on_signals(stop)
    try:
        report = await load(config, on_progress=progress, stop=stop)
        if progress is not None:
            progress.finish(report)
    finally:
        if progress is not None:
            progress.close()
    if config.report:
        await asyncio.to_thread(_write_json, config.report, report.to_json())
    if config.dry_run:
        print(dry_run_summary(report, args.price_per_million_wru))
    else:
        print(summary(report, config.rejects))
    if report.outcome.stopped_early:
        print(_how_to_go_on(config), file=sys.stderr)
    return report.exit_status


def _how_to_go_on(config: LoadConfig) -> str:
    """After a job stopped early: where its checkpoint is, and the command that goes on."""
    if not config.checkpoint:
        return (
            "ddb-loader: stopped early, with no checkpoint: run it again with "
            "--checkpoint FILE to be able to go on where a job stops."
        )
    argv = ["ddb-loader", *sys.argv[1:]]
    if "--resume" not in argv:
        argv.append("--resume")
    return (
        f"ddb-loader: the checkpoint is saved in {config.checkpoint}; to go on:\n"
        f"  {shlex.join(argv)}"
    )


async def _get(args: argparse.Namespace) -> int:
    try:
        with open(args.request, "rb") as handle:  # noqa: ASYNC230 (one small file, before any I/O)
            request = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"Cannot read {args.request}: {exc}.") from None
    result = await get(
        request, endpoint_url=args.endpoint_url, region=args.region, profile=args.profile
    )
    out = sys.stdout.buffer
    for _, item in result.items:
        shown = item if args.ddb_json else {k: to_plain(v) for k, v in item.items()}
        out.write(orjson.dumps(shown) + b"\n")
    out.flush()
    print(
        f"{len(result.items):,} items in {result.requests:,} BatchGetItem calls; "
        f"{result.consumed_rcu:,.1f} RCU consumed",
        file=sys.stderr,
    )
    return EXIT_OK


def _on_signals(stop: asyncio.Event) -> None:
    """First SIGINT/SIGTERM: stop cleanly (finish what is in flight, checkpoint, summary).
    A second one: stop at once."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def handle(number: int) -> None:
        if not stop.is_set():
            print(
                f"\nddb-loader: {signal.Signals(number).name}: finishing the requests in flight"
                " (signal again to stop at once)",
                file=sys.stderr,
            )
            stop.set()
        elif main_task is not None:
            main_task.cancel()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, handle, number)


def _write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
