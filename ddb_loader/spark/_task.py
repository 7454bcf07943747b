"""What runs in a Spark task, and what the driver makes of the tasks' results.

A task runs the loader's one pipeline on its partition's Arrow batches, on a loop of
its own, changing nothing else in the Python worker (no collector settings, no event
loop policy): Spark reuses its workers for other tasks. Its rows are records named
`partition N`, numbered from 1 in the partition's order, so last write wins within a
partition and a reject names its row. A task that stops early (retries exhausted,
DynamoDB gone for --give-up-after) fails, and Spark retries it: puts and deletes are
idempotent, and the driver counts the attempt that succeeded, once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import pickle
import socket
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from loader.api import load
from loader.backoff import SystemClock
from loader.config import LoadConfig
from loader.errors import LoaderError
from loader.lease import LeasedPacer, leased
from loader.metrics import Counters, Histogram, LoadReport, Metrics, report_of
from loader.runtime import run
from loader.sources.arrow import plain_rows, rows

FIRST_REJECTS = 5  # per task, for the merged report's sample
ROWS_PER_CHUNK = 1000  # Rows read in a thread at a time, where Spark hands Rows over


@dataclass(frozen=True, slots=True)
class Settings:
    """What every task of one write is given (pickled to the executors)."""

    config: LoadConfig  # its `rejects` is the prefix of the tasks' rejects files
    job: str  # one write's id at the lease service
    lease: str | None = None  # "host:port" of the driver's lease service; None: none
    token: str = ""


@dataclass(slots=True)
class TaskResult:
    """One task's counts, for the driver to add up."""

    partition: int
    attempt: int
    counters: Counters
    latency: Histogram
    rejects_file: str | None
    first_rejects: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    outcome: str = ""
    reason: str = ""

    def dumps(self) -> bytes:
        return pickle.dumps(self)


def rejects_file(prefix: str, partition: int, attempt: int) -> str:
    """A task's own rejects file: the prefix, the partition and the attempt."""
    return f"{prefix}-part{partition:05d}-attempt{attempt}.jsonl"


def run_partition(
    batches: Iterable[Any], settings: Settings, partition: int, attempt: int
) -> TaskResult:
    """Write one partition's `pyarrow.RecordBatch`es; raise if the job stopped early.

    Raises:
        LoaderError: the table or the configuration is wrong, or the job stopped early
            (Spark then retries the task).
    """
    result = run(_run(iter(batches), settings, partition, attempt), tune_gc=False)
    if result.outcome:
        raise LoaderError(f"partition {partition}: {result.outcome}: {result.reason}")
    return result


async def _run(
    batches: Iterator[Any], settings: Settings, partition: int, attempt: int
) -> TaskResult:
    clock = SystemClock()
    metrics = Metrics(clock.now())
    base = settings.config
    path = rejects_file(base.rejects, partition, attempt) if base.rejects else None
    # With a lease service, --max-wcu bounds the fleet: the service keeps it.
    config = dataclasses.replace(
        base, rejects=path, max_wcu=None if settings.lease else base.max_wcu
    )
    source = f"partition {partition}"
    task = f"{partition}/{attempt}/{socket.gethostname()}/{os.getpid()}"
    if settings.lease is None:
        report = await load(
            config, records=_records(batches), source=source, subscribers=(metrics,)
        )
    else:
        pacer = LeasedPacer(clock, adaptive=base.max_wcu is None)
        async with leased(
            settings.lease, settings.token, settings.job, task, pacer, fixed=base.max_wcu
        ) as lost:
            report = await load(
                config,
                records=_records(batches),
                source=source,
                pacer=pacer,
                subscribers=(metrics,),
                stop=lost,
            )
    stopped = report.outcome.stopped_early
    return TaskResult(
        partition=partition,
        attempt=attempt,
        counters=metrics.counters(),
        latency=metrics.latency,
        rejects_file=path if report.rejected else None,
        first_rejects=report.first_rejects[:FIRST_REJECTS],
        elapsed_s=report.elapsed_s,
        outcome=report.outcome.value if stopped else "",
        reason=report.reason if stopped else "",
    )


async def _records(batches: Iterator[Any]) -> AsyncIterator[dict[str, Any]]:
    """The rows, a batch at a time; Spark's iterator reads a socket, so it is read (and
    its rows converted) in a thread, not on the loop that sends."""
    while chunk := await asyncio.to_thread(next_chunk, batches):
        for record in chunk:
            yield record


def next_chunk(source: Iterator[Any]) -> list[dict[str, Any]]:
    """The next Arrow batch's rows as records, or up to ROWS_PER_CHUNK of Spark's `Row`s
    (Spark 4.0's Data Source writer has no Arrow); [] at the end."""
    first = next(source, None)
    if first is None:
        return []
    if hasattr(first, "to_pydict"):
        return list(rows((first,)))
    more = itertools.islice(source, ROWS_PER_CHUNK - 1)
    return list(plain_rows(row.asDict(recursive=True) for row in itertools.chain((first,), more)))


def merge(results: Iterable[TaskResult], elapsed_s: float) -> LoadReport:
    """The tasks' counts added up and their latency histograms merged (never a
    percentile averaged), as the report the command line prints."""
    counts = Counters()
    latency = Histogram()
    first: list[str] = []
    for result in results:
        counts = counts + result.counters
        latency.merge(result.latency)
        first.extend(result.first_rejects)
    report = report_of(counts, latency, elapsed_s)
    return dataclasses.replace(report, first_rejects=tuple(first[:FIRST_REJECTS]))
