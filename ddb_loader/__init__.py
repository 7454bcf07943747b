"""ddb-loader from Python: load files, or records your program holds, into DynamoDB.

    import ddb_loader

    report = ddb_loader.load("catalog.jsonl", table="products")
    report = ddb_loader.load(
        ({"PK": f"p#{i}", "price": Decimal("9.99")} for i in range(1000)),
        table="products",
        on_reject=print,
    )
    report = await ddb_loader.load_async(records, table="products")  # inside an event loop

Every guarantee of the command line holds: numbers exact (`int` and `Decimal`; a
`float` is refused, as boto3 refuses it), DynamoDB's limits checked before a write,
last write wins per key in the order given, pacing by what the table accepts, and a
reject for each record the service refuses, with the reason. Keyword names are the
command line's flags in snake_case (`max_wcu=`, `workers=`, `rejects=`, ...; see
`LoadConfig`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar, cast

from loader.api import load as _load
from loader.batch_writer import SyncWriter, UnwrittenError, Writer
from loader.config import LoadConfig
from loader.errors import Aborted, ConfigError, LoaderError, RetriesExhausted, SourceError
from loader.metrics import LoadReport
from loader.model import Reject
from loader.records import Delete, Records
from loader.rejects import RejectCallback
from loader.runtime import run

T = TypeVar("T")
Source = str | os.PathLike[str] | list[str | os.PathLike[str]] | Records


async def load_async(
    source: Source,
    *,
    table: str | None = None,
    typed: bool = False,
    on_reject: RejectCallback | None = None,
    **options: Any,
) -> LoadReport:
    """Load `source` into `table` and return the report (also when the job was aborted).

    `source` is a path, a list of paths, or an iterable or async iterable of dicts
    (DynamoDB-JSON items when `typed`). Records are numbered from 1 in their order:
    a `Reject` names a record by that number (`line`) and the source `<records>`, and
    goes to `on_reject` and to the `rejects=` file, if given. `options` are
    `LoadConfig`'s fields (`endpoint_url`, `region`, `profile`, `max_wcu`, ...).

    Raises:
        ConfigError: an unknown option or a bad configuration, before any write.
        SourceError: an input file could not be read.
    """
    records: Records | None = None
    if isinstance(source, str | os.PathLike):
        paths: tuple[str, ...] = (os.fspath(source),)
    elif isinstance(source, list) and source and all(_is_path(s) for s in source):
        paths = tuple(os.fspath(s) for s in source)
    elif isinstance(source, Mapping | bytes):
        raise ConfigError(
            "A source of records is a list, an iterable or an async iterable of dicts, "
            "not one dict: wrap it in a list."
        )
    else:
        paths, records = (), cast(Records, source)
    config = _config(paths, table, options)
    return await _load(config, records=records, typed=typed, on_reject=on_reject)


def load(
    source: Source,
    *,
    table: str | None = None,
    typed: bool = False,
    on_reject: RejectCallback | None = None,
    **options: Any,
) -> LoadReport:
    """`load_async`, blocking until the job ends (scripts, notebooks; inside async code,
    `await load_async` instead, which leaves the loop free)."""
    return _run(load_async(source, table=table, typed=typed, on_reject=on_reject, **options))


def writer(
    table: str,
    *,
    typed: bool = False,
    on_reject: RejectCallback | None = None,
    **options: Any,
) -> Writer:
    """An async context manager in the shape of boto3's `Table.batch_writer()`::

        async with ddb_loader.writer("products", region="eu-west-1") as w:
            await w.put({"PK": "p#1", "SK": "v1", "price": Decimal("9.99")})
            await w.delete({"PK": "p#0", "SK": "v1"})
        print(w.report.items_written)

    Operations are batched, sent many at once, retried on `UnprocessedItems` and paced
    as `load` does; last write wins per key in the order given. Exit waits until every
    one is written, and raises `UnwrittenError` with those that were not (the
    service's rejects, with reasons, and any the job stopped before). `options` are
    `LoadConfig`'s fields.

    Raises:
        ConfigError: an unknown option or a bad configuration (the table's own
            problems, such as not existing, come from the first `put` or the exit).
    """
    return Writer(_config((), table, options), typed=typed, on_reject=on_reject)


def sync_writer(
    table: str,
    *,
    typed: bool = False,
    on_reject: RejectCallback | None = None,
    **options: Any,
) -> SyncWriter:
    """`writer` for code without an event loop: `with ddb_loader.sync_writer("t") as w:
    w.put(item)`. The same guarantees; it runs its own loop in a thread."""
    return SyncWriter(_config((), table, options), typed=typed, on_reject=on_reject)


def _is_path(value: object) -> bool:
    return isinstance(value, str | os.PathLike)


def _config(paths: tuple[str, ...], table: str | None, options: dict[str, Any]) -> LoadConfig:
    fields = set(LoadConfig.__dataclass_fields__) - {"sources", "table"}
    unknown = sorted(set(options) - fields)
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"Unknown option {unknown[0]!r}: the options are {known}.")
    for name in ("templates", "keys"):
        if name in options:
            options[name] = tuple(options[name])
    return LoadConfig(sources=paths, table=table, **options)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a new event loop, changing nothing else in the process. Where this
    thread runs a loop already (a notebook's kernel), on a thread of its own: the call
    blocks as a blocking call should, and the caller's loop is left alone."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run(coro, tune_gc=False)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ddb-loader") as pool:
        return pool.submit(run, coro, tune_gc=False).result()


__all__ = [
    "Aborted",
    "ConfigError",
    "Delete",
    "LoadConfig",
    "LoadReport",
    "LoaderError",
    "Reject",
    "RetriesExhausted",
    "SourceError",
    "SyncWriter",
    "UnwrittenError",
    "Writer",
    "load",
    "load_async",
    "sync_writer",
    "writer",
]
