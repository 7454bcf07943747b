"""The loader's exceptions and a job's outcome: one tree rooted at `LoaderError`.

    LoaderError
    ├── ConfigError          the job cannot start: flags, credentials, endpoint (exit 2)
    │   └── TableNotFound    the table does not exist (table, endpoint)
    ├── SourceError          an input that cannot be read at all (path, line; exit 2)
    ├── ServiceError         DynamoDB, or the way to it, answered with an error (code, status)
    │   ├── TransientError   may succeed if sent again: throttled, 5xx, a broken connection
    │   └── RequestRejected  refused for what the request holds (ValidationException, …)
    ├── TransportError       an answer cut off or malformed on the wire (loader.http)
    ├── CodecError           a record DynamoDB would refuse: the reason (loader.codec)
    │   └── MissingKey       it lacks a key attribute (attribute)
    ├── RetriesExhausted     operations DynamoDB kept refusing (operations, attempts)
    └── Aborted              the job stopped early: signal, --max-rejects or
                             --max-retries (outcome; exit 3)

Foreign errors (botocore, sockets, OSError) are translated in `loader.client` and
`loader.sources`, never deeper, so every message a user sees is ours. Code decides on
an error's class and fields (`code`, `throttled`), never on its text.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any


class LoaderError(Exception):
    """Root of every error ddb-loader raises on purpose."""


class ConfigError(LoaderError):
    """The job cannot start: the message is one sentence for the user."""


class TableNotFound(ConfigError):
    """DynamoDB has no table of that name at that endpoint."""

    def __init__(self, message: str, *, table: str, endpoint: str) -> None:
        super().__init__(message)
        self.table = table
        self.endpoint = endpoint


class SourceError(LoaderError):
    """An input file cannot be opened or read."""

    def __init__(self, message: str, *, path: str, line: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class ServiceError(LoaderError):
    """DynamoDB answered a request with an error (`code`, e.g. "ValidationException", and
    the HTTP `status`; 0 when no answer came at all)."""

    def __init__(self, message: str, *, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class TransientError(ServiceError):
    """A request that may succeed if sent again: throttled, 5xx, or a broken connection."""

    def __init__(
        self,
        message: str,
        *,
        throttled: bool,
        code: str = "",
        status: int = 0,
        reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.throttled = throttled
        self.reasons = reasons  # DynamoDB's ThrottlingReasons, when it gives them

    @property
    def key_range(self) -> bool:
        """Throttled for a hot key range only (its keys back off), not the table's limit."""
        return bool(self.reasons) and all("KeyRange" in reason for reason in self.reasons)


class RequestRejected(ServiceError):
    """DynamoDB refused the request's contents (ValidationException and kin)."""


class TransportError(LoaderError):
    """An HTTP answer that is malformed or cut off; the client retries it as transient."""


class RetriesExhausted(LoaderError):
    """DynamoDB refused these operations `attempts` times in a row."""

    def __init__(self, message: str, *, operations: Sequence[Any], attempts: int) -> None:
        super().__init__(message)
        self.operations = operations
        self.attempts = attempts


class Outcome(enum.Enum):
    """How a job ended. The exit status follows from it and from the rejects."""

    OK = "ok"
    DRY_RUN = "dry run"
    ABORTED = "aborted"
    RETRIES_EXHAUSTED = "retries exhausted"

    @property
    def stopped_early(self) -> bool:
        """Records may still be pending: `--resume` goes on (exit 3)."""
        return self in (Outcome.ABORTED, Outcome.RETRIES_EXHAUSTED)


class Aborted(LoaderError):
    """The job stopped before the end of its input: a signal or --max-rejects
    (`Outcome.ABORTED`), or a write DynamoDB kept refusing past --max-retries
    (`Outcome.RETRIES_EXHAUSTED`). Either way its records are pending, not rejected."""

    def __init__(self, message: str, outcome: Outcome = Outcome.ABORTED) -> None:
        super().__init__(message)
        self.outcome = outcome


def first_of(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first real exception in a (nested) exception group: task groups nest them."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
