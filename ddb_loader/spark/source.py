"""The `ddb-loader` format of Spark 4's Python Data Source API (Glue 6, EMR 8)::

    df.write.format("ddb-loader").option("table", "products").mode("append").save()

Options: `table`, `region`, `endpointUrl`, `profile`, `maxWcu`, `workers`, `rejects`
(the prefix of the tasks' rejects files) and `report` (a path the driver writes the
merged report to, as JSON). `writer()` and `commit()` run in Python workers of the
driver's host, not in the driver's own process: the report goes to that file and to
standard error (the driver's log), not back to the caller.
"""

from __future__ import annotations

import pickle
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSource, DataSourceWriter, WriterCommitMessage

try:  # Spark 4.1 and later hand a writer Arrow batches; 4.0, Rows
    from pyspark.sql.datasource import DataSourceArrowWriter as _Base
except ImportError:  # pragma: no cover  (Spark 4.0)
    _Base = DataSourceWriter  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from ddb_loader.spark._task import Settings

# Spark imports this module to find the format, in every session, before any write:
# what a write needs beyond the package (botocore, pyarrow, the tasks' code) is
# imported when a write begins, and finding the format costs about 0.08 s.

# The options, as Spark hands them over (lower case), and LoadConfig's names for them.
OPTIONS = {
    "region": "region",
    "endpointurl": "endpoint_url",
    "profile": "profile",
    "maxwcu": "max_wcu",
    "workers": "workers",
}
NUMBERS = {"max_wcu": float, "workers": int}


class DdbLoaderDataSource(DataSource):
    """Writes a DataFrame's rows to a DynamoDB table through ddb-loader."""

    lease: tuple[str, str] | None = None  # the driver's lease service: (address, token)

    @classmethod
    def name(cls) -> str:
        return "ddb-loader"

    def writer(self, schema: Any, overwrite: bool) -> DataSourceWriter:
        from ddb_loader.spark import _check, prepare
        from ddb_loader.spark._task import Settings
        from loader.errors import ConfigError
        from loader.runtime import run

        if overwrite:
            raise ConfigError(
                "ddb-loader puts items, it does not replace a table: use mode('append')."
            )
        options = {key.lower(): value for key, value in self.options.items()}
        table, rejects, report = (options.pop(k, None) for k in ("table", "rejects", "report"))
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(
                f"Unknown option {unknown[0]!r}: the options are table, rejects, report, "
                "region, endpointUrl, profile, maxWcu, workers."
            )
        values: dict[str, Any] = {}
        for key, value in options.items():
            name = OPTIONS[key]
            try:
                values[name] = NUMBERS.get(name, str)(value)
            except ValueError:
                raise ConfigError(f"Option {key!r} is a number, not {value!r}.") from None
        if values.get("max_wcu") is not None and self.lease is None:
            raise ConfigError(
                "maxWcu bounds the whole fleet, which needs the driver's lease service: "
                "call ddb_loader.spark.register(spark) before the write."
            )
        config = prepare(table or "", rejects, values)
        run(_check(config), tune_gc=False)
        address, token = self.lease or (None, "")
        settings = Settings(config=config, job=uuid.uuid4().hex, lease=address, token=token)
        return _Writer(settings, report)


@dataclass(frozen=True, slots=True)
class _Done(WriterCommitMessage):
    result: bytes  # a pickled TaskResult


class _Writer(_Base):
    def __init__(self, settings: Settings, report: str | None) -> None:
        self._settings = settings
        self._report = report
        self._started = time.time()  # commit() runs in another process: wall-clock time

    def write(self, iterator: Iterator[Any]) -> _Done:
        from pyspark import TaskContext

        from ddb_loader.spark._task import run_partition

        context = TaskContext.get()
        assert context is not None
        partition, attempt = context.partitionId(), context.attemptNumber()
        return _Done(run_partition(iterator, self._settings, partition, attempt).dumps())

    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        import orjson

        from ddb_loader.spark import tell_rejects
        from ddb_loader.spark._task import TaskResult, merge
        from loader.display import summary

        results: list[TaskResult] = [
            pickle.loads(m.result) for m in messages if isinstance(m, _Done)
        ]
        report = merge(results, time.time() - self._started)
        tell_rejects(report, results)
        if self._report:
            Path(self._report).write_bytes(orjson.dumps(report.to_json()))
        print(summary(report), file=sys.stderr)


def leased_source(address: str, token: str) -> type[DdbLoaderDataSource]:
    """The Data Source whose tasks take their share from the lease service at `address`.
    Made here, not imported, so that Spark pickles it with the address."""
    return type("DdbLoaderLeasedSource", (DdbLoaderDataSource,), {"lease": (address, token)})
