"""Input formats. Each is one module with a `Format`, and one line in `FORMATS`.

A source is an async iterator of lists of `Record | Reject`: lists, not single
records, so that one `await` per megabyte of input keeps the event loop's
per-record cost at zero.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping

from loader.errors import ConfigError
from loader.model import Chunk, Record, Reject
from loader.sources import csvfile, ion, jsonl, parquet, typed
from loader.sources._format import Format

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        jsonl.FORMAT,
        csvfile.FORMAT,
        typed.REQUEST_ITEMS,  # before ddb-json: both claim .json, this one sniffs
        typed.DDB_JSON,
        parquet.FORMAT,
        ion.FORMAT,
    )
}


def detect_format(path: str) -> str:
    """The format `--format auto` picks for `path`: by its suffix (.gz aside), a folder by
    the format that reads folders, and between formats of one suffix by their `sniff`.

    Raises:
        ConfigError: the name says nothing (stdin, unknown suffix).
    """
    if path != "-" and not path.startswith("s3://") and os.path.isdir(path):
        claims = [f for f in FORMATS.values() if f.folders]
    else:
        suffix = os.path.splitext(path.removesuffix(".gz").removesuffix(".zst"))[1].lower()
        claims = [f for f in FORMATS.values() if suffix and suffix in f.suffixes]
    for fmt in claims:
        if fmt.sniff is None or fmt.sniff(path):
            return fmt.name
    where = "standard input" if path == "-" else path
    raise ConfigError(f"Cannot tell the format of {where}: pass --format.")


def format_of(name: str) -> Format:
    """The registered format called `name`.

    Raises:
        ConfigError: no such format.
    """
    try:
        return FORMATS[name]
    except KeyError:
        names = ", ".join(["auto", *FORMATS])
        raise ConfigError(f"Unknown --format {name!r}: use one of {names}.") from None


def open_source(
    path: str, fmt: str, *, csv_types: Mapping[str, str]
) -> AsyncGenerator[Chunk, None]:
    """The records of one source, in file order."""
    name = "<stdin>" if path == "-" else path
    return format_of(fmt).read(path, name, csv_types)


__all__ = [
    "FORMATS",
    "Chunk",
    "Format",
    "Record",
    "Reject",
    "detect_format",
    "format_of",
    "open_source",
]
