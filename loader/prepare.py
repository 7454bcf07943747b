"""Records become writes: `--set` templates, the codec, and the checks of a job's first
record, which stop a job whose table or key schema does not fit its input."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loader.codec import CodecError, KeySchema, MissingKey, Write, encode
from loader.config import LoadConfig
from loader.errors import ConfigError
from loader.model import Record, Reject

RejectRecord = Callable[[int, Reject], None]
"""Where a record that will not be written goes, with its number."""


class Preparer:
    """Turns each record into a `Write`, or hands it to `reject` with the reason.

    `first`: this preparer sees the job's first record (the process that reads the
    input from its start; not a writer process, not a resumed job). A first record
    that lacks the table's key, or a field a --set template names, is a ConfigError:
    the input and the table do not belong together, and nothing is written.
    """

    def __init__(
        self,
        config: LoadConfig,
        schemas: Mapping[str, KeySchema],
        reject: RejectRecord,
        *,
        first: bool,
    ) -> None:
        self._config = config
        self._schemas = schemas
        self._reject = reject
        self._first = first
        self._delete = config.mode == "delete"

    def prepare(self, seq: int, record: Record) -> Write | None:
        """The write of record number `seq`, or None when it was rejected.

        Raises:
            ConfigError: the job's first record does not fit the table.
        """
        table = record.table or self._config.table
        assert table is not None
        schema = self._schemas[table]
        value = record.value
        if self._config.templates and not record.typed:
            value = self._templated(seq, record)
            if value is None:
                return None
        try:
            write = encode(
                seq=seq,
                source=record.source,
                line=record.line,
                value=value,
                text=record.text,
                typed=record.typed,
                delete=record.delete or self._delete,
                schema=schema,
            )
        except CodecError as exc:
            if self._first and isinstance(exc, MissingKey):
                raise ConfigError(
                    f"The first record ({record.source}:{record.line}) does not carry the key of "
                    f"table {table!r} ({', '.join(schema.names)}): {exc}."
                ) from None
            self._first = False
            self._reject(seq, Reject(record.source, record.line, str(exc), record.text))
            return None
        self._first = False
        return write

    def _templated(self, seq: int, record: Record) -> Any:
        """The record with its --set attributes, or None (rejected)."""
        if not isinstance(record.value, dict):
            return record.value  # encode() rejects it with the right reason
        value = dict(record.value)
        for attribute, template in self._config.templates:
            try:
                value[attribute] = template.format_map(value)
            except (KeyError, IndexError, ValueError) as exc:
                reason = f"--set {attribute}={template}: the record has no field {exc}"
                if self._first:
                    raise ConfigError(
                        f"{reason} (first record, {record.source}:{record.line})."
                    ) from None
                self._reject(seq, Reject(record.source, record.line, reason, record.text))
                return None
        return value


def csv_types(config: LoadConfig, schemas: Mapping[str, KeySchema]) -> dict[str, str]:
    """CSV column types: key columns take their table's declared type unless the user
    typed them (--csv-type)."""
    types: dict[str, str] = {}
    for schema in schemas.values():
        types[schema.hash_name] = "N" if schema.hash_type == "N" else "S"
        if schema.range_name and schema.range_type:
            types[schema.range_name] = "N" if schema.range_type == "N" else "S"
    types.update(config.csv_types)
    return types
