"""`LoadConfig`: every knob of a job, its default, and its validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loader.errors import ConfigError

MODES = ("put", "delete")
CSV_TYPES = ("S", "N", "BOOL", "JSON")
KEY_TYPES = ("S", "N", "B")

# The fewest workers that reach DynamoDB Local's own ceiling in benchmarks/peers.py
# (its figures are in benchmarks/README.md). Against AWS, latency is higher and more in
# flight helps further (--workers).
DEFAULT_WORKERS = 32
DEFAULT_QUEUE_SIZE = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadConfig:
    """What to load, where, and how hard.

    Memory: at most ``queue_size + workers`` batches are held at once, each of
    at most 25 items, so the loader's working set is bounded by
    ``(queue_size + workers) × 25 × item size`` — with the defaults and 1 KB
    items about 1.6 MB, whatever the size of the input.

    The format's name and whether it needs a table are checked against the sources'
    registry when the job starts, before anything is read.

    Raises:
        ConfigError: a knob is out of range or contradicts another.
    """

    sources: tuple[str, ...] = ()  # files; none when the records come from Python
    table: str | None = None
    format: str = "auto"
    mode: str = "put"
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    s3_endpoint_url: str | None = None  # for s3:// sources (default: botocore's for S3)
    workers: int = DEFAULT_WORKERS
    queue_size: int = DEFAULT_QUEUE_SIZE
    max_wcu: float | None = None
    max_retries: int = 10
    give_up_after_s: float = 900.0  # DynamoDB not answering at all for this long: stop
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 1.0
    adaptive: bool = True
    rejects: str | None = None
    max_rejects: int | None = None
    checkpoint: str | None = None
    checkpoint_interval_s: float = 1.0
    stop_grace_s: float = 10.0
    resume: bool = False
    report: str | None = None
    dry_run: bool = False
    progress: bool = False
    csv_types: Mapping[str, str] = field(default_factory=dict)
    templates: tuple[tuple[str, str], ...] = ()
    processes: int = 1
    create_table: bool = False
    keys: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "csv_types", dict(self.csv_types))  # a copy: ours alone
        if self.sources.count("-") > 1:
            raise ConfigError("Standard input (-) can be named only once.")
        if self.mode not in MODES:
            raise ConfigError(f"Unknown mode {self.mode!r}: use put or delete.")
        _positive("--workers", self.workers)
        _positive("--queue-size", self.queue_size)
        _positive("--processes", self.processes)
        if self.max_retries < 0:
            raise ConfigError("--max-retries must be 0 or more.")
        if self.give_up_after_s <= 0:
            raise ConfigError("--give-up-after must be a positive duration (900, 90s, 15m, 1h).")
        if self.max_wcu is not None and self.max_wcu <= 0:
            raise ConfigError("--max-wcu must be a positive number of write capacity units.")
        if self.max_rejects is not None and self.max_rejects < 0:
            raise ConfigError("--max-rejects must be 0 or more.")
        if self.resume and not self.checkpoint:
            raise ConfigError("--resume needs --checkpoint FILE to resume from.")
        if self.checkpoint and "-" in self.sources:
            raise ConfigError("--checkpoint cannot track standard input: name a file instead.")
        if self.backoff_base_s <= 0 or self.backoff_cap_s < self.backoff_base_s:
            raise ConfigError("Backoff needs 0 < base <= cap.")
        for column, kind in self.csv_types.items():
            if kind not in CSV_TYPES:
                raise ConfigError(
                    f"--csv-type {column}={kind}: the type must be one of {', '.join(CSV_TYPES)}."
                )
        if self.create_table and not self.keys:
            raise ConfigError("--create-table needs --key NAME:TYPE (the partition key first).")
        if len(self.keys) > 2:
            raise ConfigError("--key may be given at most twice: partition key, then sort key.")
        for name, kind in self.keys:
            if not name or kind not in KEY_TYPES:
                raise ConfigError(f"--key {name}:{kind}: use NAME:S, NAME:N or NAME:B.")


def _positive(flag: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{flag} must be 1 or more.")
