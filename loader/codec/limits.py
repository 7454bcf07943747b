"""What DynamoDB allows an item and charges for writing it, and `CodecError`, the
refusal of a record that breaks one of its rules.

The bottom of the package: every other codec module imports from here, this imports
none of them (only the loader's exception tree, which CodecError belongs to).
"""

from __future__ import annotations

from loader.errors import LoaderError

MAX_ITEM_BYTES = 400 * 1024
WCU_BYTES = 1024

_TOO_DEEP = "values nested too deep (DynamoDB keeps 32 levels)"


class CodecError(LoaderError, ValueError):
    """A record DynamoDB would refuse; the message is the reason a person reads."""


class MissingKey(CodecError):
    """The record lacks a key attribute of its table (on a job's first record, the sign
    of a wrong table or key schema rather than of one bad record)."""

    def __init__(self, message: str, *, attribute: str) -> None:
        super().__init__(message)
        self.attribute = attribute


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def wcu(size: int) -> int:
    """Write capacity units of a put of `size` bytes: 1 KB units, rounded up, at least 1."""
    return max(1, -(-size // WCU_BYTES))


def check_size(size: int) -> None:
    """Raises: CodecError: the item is over DynamoDB's 400 KB limit."""
    if size > MAX_ITEM_BYTES:
        raise CodecError(f"item is {size} bytes; DynamoDB's limit is {MAX_ITEM_BYTES} (400 KB)")
