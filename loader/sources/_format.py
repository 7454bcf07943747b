"""What an input format is to the rest of the loader: one `Format` per module."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass

from loader.model import Chunk

Reader = Callable[[str, str, Mapping[str, str]], AsyncGenerator[Chunk, None]]
"""(path, the name rejects show, CSV column types) → the records, in file order."""


@dataclass(frozen=True, slots=True)
class Format:
    """An input format: how to read it and what `--format auto` and the pipeline know of it.

    `sniff` decides between formats that claim the same suffix (tried in registry order;
    one without `sniff` takes what the others leave). `folders` claims a directory,
    which `expand` turns into its data files. `names_tables`: its records say their own
    table (no --table needed), listed before any write by `tables`. `json_lines`: every
    line is one plain JSON record, so a --processes writer can pick its own lines.
    `check` looks at a file before the job writes anything (a schema it cannot load).
    """

    name: str
    read: Reader
    suffixes: tuple[str, ...] = ()
    sniff: Callable[[str], bool] | None = None
    folders: bool = False
    expand: Callable[[str], list[str]] | None = None
    names_tables: bool = False
    tables: Callable[[str], list[str]] | None = None
    stdin: bool = True
    json_lines: bool = False
    check: Callable[[str], None] | None = None  # refuses a file before any write
