"""What a job needs before it reads a record: its sources, a client, every table's key.

Everything here may refuse the job with one ConfigError sentence, and does so before
anything is read or written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from loader.client import DynamoClient, open_client
from loader.codec import Index, KeySchema
from loader.config import LoadConfig
from loader.errors import ConfigError, RequestRejected, TableNotFound, TransientError
from loader.sources import detect_format, format_of
from loader.sources.s3 import expand as expand_s3
from loader.sources.s3 import is_s3, s3_access

log = logging.getLogger("ddb_loader")


@asynccontextmanager
async def connect(
    config: LoadConfig, client: DynamoClient | None, *, records: bool = False
) -> AsyncIterator[tuple[DynamoClient, list[tuple[str, str]], dict[str, KeySchema]]]:
    """The client, the resolved sources and every table's key schema: all a job needs
    to start, found (or refused with a ConfigError) before anything is read or written.
    `records`: the job's input is records from Python, not files."""
    _check_writable(config.rejects, "the rejects file")
    async with AsyncExitStack() as stack:
        if not records and any(is_s3(path) for path in config.sources):
            await stack.enter_async_context(
                s3_access(
                    region=config.region,
                    profile=config.profile,
                    endpoint_url=config.s3_endpoint_url,
                )
            )
        sources = _check_records(config) if records else await _resolve_sources(config)
        if client is None:
            client = await stack.enter_async_context(
                open_client(
                    endpoint_url=config.endpoint_url,
                    region=config.region,
                    profile=config.profile,
                    connections=config.workers + 4,
                )
            )
        yield client, sources, await preflight(client, config, sources)


def _check_writable(path: str | None, what: str) -> None:
    """`path` can be created or appended to (it is opened only when first needed).

    Raises:
        ConfigError: it cannot.
    """
    if path is None:
        return
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path) or not os.path.isdir(folder):
        raise ConfigError(f"Cannot write {what} {path}: no such folder, or it is one.")
    if not os.access(path if os.path.exists(path) else folder, os.W_OK):
        raise ConfigError(f"Cannot write {what} {path}: permission denied.")


def _check_records(config: LoadConfig) -> list[tuple[str, str]]:
    """No files: records from Python need a table, and cannot be resumed or split.

    Raises:
        ConfigError: files named as well, no table, a checkpoint, or processes.
    """
    if config.sources:
        raise ConfigError("Give either files or records to load, not both.")
    if config.table is None:
        raise ConfigError("Records need a table to go to: pass table=.")
    if config.checkpoint or config.resume:
        raise ConfigError("A checkpoint tracks files; records from Python cannot be resumed.")
    if config.processes > 1:
        raise ConfigError("Records from Python are written by one process: leave processes at 1.")
    return []


async def _resolve_sources(config: LoadConfig) -> list[tuple[str, str]]:
    """Every input file with its format's name: folders, prefixes and exports expanded,
    formats detected, and each file's format's check passed.

    Raises:
        ConfigError: a file is missing, a format unknown, or --table needed and absent.
    """
    if not config.sources:
        raise ConfigError("No SOURCE given: name at least one file, or - for stdin.")
    resolved = []
    for path in config.sources:
        if is_s3(path):
            files = await expand_s3(path)
        elif path != "-" and not os.path.exists(path):  # noqa: ASYNC240  (once, before the job)
            raise ConfigError(f"Cannot read {path}: no such file or folder.")
        else:
            files = [path]
        for file in files:
            fmt = format_of(config.format if config.format != "auto" else detect_format(file))
            if path == "-" and not fmt.stdin:
                raise ConfigError(f"A {fmt.name} file cannot come from standard input: name it.")
            for each in fmt.expand(file) if fmt.expand else [file]:
                if fmt.check is not None:
                    # In a thread: an object's check reads it through this loop.
                    await asyncio.to_thread(fmt.check, each)
                resolved.append((each, fmt.name))
    if not resolved:
        raise ConfigError("The sources hold no data files.")
    if config.table is None and not all(format_of(f).names_tables for _, f in resolved):
        raise ConfigError("--table is required (only request-items files name their tables).")
    return resolved


async def preflight(
    client: DynamoClient, config: LoadConfig, sources: list[tuple[str, str]]
) -> dict[str, KeySchema]:
    """Describe (or create) every table the job writes to, before reading anything.

    Raises:
        ConfigError: a table is missing, or DynamoDB cannot be reached or refuses us.
    """
    tables = [config.table] if config.table else []
    for path, name in sources:
        listed = format_of(name).tables
        if listed is not None:
            tables += [t for t in listed(path) if t not in tables]
    schemas = {}
    for table in tables:
        _check_name(table)
        try:
            created = config.create_table and await _create_table(client, table, config.keys)
            started = time.monotonic()
            description = await _active(client, table)
            if created:
                waited = time.monotonic() - started
                log.info("created table %r (on-demand), ACTIVE after %.1f s", table, waited)
            elif config.create_table:
                log.info("table %r exists already: loading into it", table)
        except RequestRejected as exc:
            raise ConfigError(f"DynamoDB refused to describe table {table!r}: {exc}.") from None
        except TransientError as exc:
            where = config.endpoint_url or "the AWS endpoint"
            raise ConfigError(f"Cannot reach DynamoDB at {where}: {exc}.") from None
        except TableNotFound:
            raise ConfigError(
                f"Table {table!r} does not exist at {config.endpoint_url or 'AWS'}"
                " (create it first, or pass --create-table --key NAME:TYPE)."
            ) from None
        schemas[table] = schema_of(table, description)
    return schemas


# DynamoDB's rule for a table's name; an ARN names a table too.
_NAME = re.compile(
    r"[A-Za-z0-9_.-]{3,255}|arn:[^:]+:dynamodb:[^:]*:[^:]*:table/[A-Za-z0-9_.-]{3,255}"
)
ACTIVE_POLL_S = 1.0
ACTIVE_WAIT_S = 600.0  # a new table is ACTIVE in seconds; one with many indexes, minutes


def _check_name(table: str) -> None:
    if not _NAME.fullmatch(table):
        raise ConfigError(
            f"{table!r} cannot be a DynamoDB table name: use 3 to 255 letters, digits, "
            "'_', '-' or '.' (or the table's ARN)."
        )


async def _active(client: DynamoClient, table: str) -> dict[str, Any]:
    """The table's description once it takes writes: a table still being created
    answers every write with ResourceNotFoundException.

    Raises:
        ConfigError: still CREATING after ACTIVE_WAIT_S.
    """
    waited = 0.0
    while True:
        description: dict[str, Any] = (await client.describe_table(table))["Table"]
        if description.get("TableStatus", "ACTIVE") != "CREATING":
            return description
        if waited >= ACTIVE_WAIT_S:
            raise ConfigError(
                f"Table {table!r} is still being created after {waited / 60:.0f} min: "
                "try again once DescribeTable says ACTIVE."
            )
        await asyncio.sleep(ACTIVE_POLL_S)
        waited += ACTIVE_POLL_S


def schema_of(table: str, description: dict[str, Any]) -> KeySchema:
    """The KeySchema of a DescribeTable answer."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    keys = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
    hash_name, range_name = keys["HASH"], keys.get("RANGE")
    indexes = []
    for spec in description.get("GlobalSecondaryIndexes", []) + description.get(
        "LocalSecondaryIndexes", []
    ):
        names = tuple(k["AttributeName"] for k in spec["KeySchema"])
        projection = spec.get("Projection", {})
        projected: frozenset[str] | None = None
        if projection.get("ProjectionType", "ALL") != "ALL":
            projected = frozenset(
                (
                    hash_name,
                    *([range_name] if range_name else []),
                    *names,
                    *projection.get("NonKeyAttributes", []),
                )
            )
        indexes.append(Index(spec["IndexName"], names, projected))
    return KeySchema(
        table,
        hash_name,
        types[hash_name],
        range_name,
        types[range_name] if range_name else None,
        tuple(indexes),
    )


async def _create_table(client: DynamoClient, table: str, keys: Iterable[tuple[str, str]]) -> bool:
    """Create `table` on demand; False if it exists already."""
    keys = list(keys)
    schema = [{"AttributeName": keys[0][0], "KeyType": "HASH"}]
    if len(keys) > 1:
        schema.append({"AttributeName": keys[1][0], "KeyType": "RANGE"})
    try:
        await client.create_table(
            TableName=table,
            KeySchema=schema,
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
            BillingMode="PAY_PER_REQUEST",
        )
    except RequestRejected as exc:
        if exc.code != "ResourceInUseException":  # it exists already: fine
            raise ConfigError(f"Cannot create table {table!r}: {exc}.") from None
        return False
    return True
