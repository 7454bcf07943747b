"""The loader's exceptions, one tree rooted at `LoaderError`.

    LoaderError
    ├── ConfigError        bad flags, missing table, unreachable endpoint, no credentials (exit 2)
    ├── SourceError        an input that cannot be read at all (path, line)
    ├── RetriesExhausted   operations DynamoDB kept refusing (operations, attempts)
    └── Aborted            the job stopped early: signal or --max-rejects (exit 3)

Foreign errors (botocore, aiohttp, OSError) are translated in `loader.client`
and `loader.sources`, never deeper, so every message a user sees is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class LoaderError(Exception):
    """Root of every error ddb-loader raises on purpose."""


class ConfigError(LoaderError):
    """The job cannot start: the message is one sentence for the user."""


class SourceError(LoaderError):
    """An input file cannot be opened or read."""

    def __init__(self, message: str, *, path: str, line: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class RetriesExhausted(LoaderError):
    """DynamoDB refused these operations `attempts` times in a row."""

    def __init__(self, message: str, *, operations: Sequence[Any], attempts: int) -> None:
        super().__init__(message)
        self.operations = operations
        self.attempts = attempts


class Aborted(LoaderError):
    """The job stopped before the end of its input (signal or --max-rejects)."""
