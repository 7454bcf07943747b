"""S3 objects as sources: `s3://bucket/key`, `s3://bucket/prefix/` (its objects in key
order, one input), and DynamoDB exports (`…/AWSDynamoDB/<id>/`, by their manifests).

Objects are streamed by ranged GETs of `RANGE_BYTES`, one read ahead, never copied to
disk; each range names the ETag the listing saw (`If-Match`), so an object replaced
mid-read is an error, not a file spliced from two versions. A range that fails is
retried `RANGE_TRIES` times with backoff, then the job stops with its checkpoint.
Credentials, region and endpoint are the table's chain (botocore's: profiles, roles,
`AWS_ENDPOINT_URL_S3`), and `--s3-endpoint-url` for an S3-compatible store.

A DynamoDB export is read exactly as its manifests say: `manifest-summary.json` is
written last, so without it the export is not finished; `manifest-files.json` names
every data file and its item count, and a file it names that is missing, or counts
that disagree with the summary's, refuse the export with one sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from loader.errors import ConfigError, SourceError

RANGE_BYTES = 8 << 20
RANGE_TRIES = 5
EXPORT_MARK = "/AWSDynamoDB/"


@dataclass(frozen=True, slots=True)
class S3Object:
    url: str
    size: int
    etag: str


@dataclass(slots=True)
class _Access:
    client: Any
    objects: dict[str, S3Object] = field(default_factory=dict)  # url -> what listing saw
    loop: asyncio.AbstractEventLoop | None = None


_access: contextvars.ContextVar[_Access | None] = contextvars.ContextVar("s3", default=None)


def is_s3(path: str) -> bool:
    return path.startswith("s3://")


def split(url: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URL.

    Raises:
        ConfigError: no bucket.
    """
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"{url} names no bucket: write s3://bucket/key.")
    return bucket, key


@contextlib.asynccontextmanager
async def s3_access(
    *, region: str | None, profile: str | None, endpoint_url: str | None
) -> AsyncIterator[None]:
    """An S3 client for the sources of the job that runs inside the block."""
    from aiobotocore.session import AioSession

    session = AioSession(profile=profile)
    async with session.create_client("s3", region_name=region, endpoint_url=endpoint_url) as c:
        token = _access.set(_Access(c, loop=asyncio.get_running_loop()))
        try:
            yield
        finally:
            _access.reset(token)


def _client() -> _Access:
    access = _access.get()
    if access is None:
        raise ConfigError("s3:// sources are read inside a load job only.")
    return access


async def expand(url: str) -> list[str]:
    """The objects an s3:// source stands for, in key order: the object itself; a
    prefix's objects; an export's data files, as its manifests name them.

    Raises:
        ConfigError: nothing there, no access, or a partial export.
    """
    access = _client()
    bucket, key = split(url)
    if EXPORT_MARK in f"/{key}" and (key.endswith("/") or not key):
        return await _export(access, bucket, key)
    found = await _list(access, bucket, key)
    exact = [o for o in found if o.url == url]
    if exact:
        return [exact[0].url]
    if not key.endswith("/") and key:
        found = [o for o in found if o.url.startswith(url + "/")]
    manifests = [o for o in found if o.url.endswith("/manifest-summary.json")]
    if manifests:
        # A prefix that holds an export: read it by its manifest.
        export = (
            manifests[0].url.removeprefix(f"s3://{bucket}/").removesuffix("manifest-summary.json")
        )
        return await _export(access, bucket, export)
    # Folder markers, and the _SUCCESS and .crc files Spark and Hadoop leave beside data.
    data = [o.url for o in found if not o.url.rsplit("/", 1)[1].startswith(("_", "."))]
    data = [u for u in data if not u.endswith("/")]
    if not data:
        raise ConfigError(f"{url} holds no objects.")
    return data


async def _list(access: _Access, bucket: str, prefix: str) -> list[S3Object]:
    from botocore.exceptions import BotoCoreError, ClientError

    found: list[S3Object] = []
    try:
        paginator = access.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", ()):
                obj = S3Object(f"s3://{bucket}/{entry['Key']}", entry["Size"], entry["ETag"])
                access.objects[obj.url] = obj
                found.append(obj)
    except ClientError as exc:
        raise ConfigError(f"Cannot list s3://{bucket}/{prefix}: {_reason(exc)}.") from None
    except BotoCoreError as exc:
        raise ConfigError(f"Cannot reach S3 for s3://{bucket}/{prefix}: {exc}.") from None
    return sorted(found, key=lambda o: o.url)


async def _export(access: _Access, bucket: str, prefix: str) -> list[str]:
    """The data files of the export at `prefix`, checked against its manifests."""
    where = f"s3://{bucket}/{prefix}"
    objects = {o.url: o for o in await _list(access, bucket, prefix)}
    summary_url = f"{where}manifest-summary.json"
    if summary_url not in objects:
        raise ConfigError(
            f"{where} is not a finished DynamoDB export: it has no manifest-summary.json "
            "(DynamoDB writes it last)."
        )
    summary = orjson.loads(await _read_all(access, summary_url))
    if summary.get("outputFormat", "DYNAMODB_JSON") not in ("DYNAMODB_JSON", "ION"):
        raise ConfigError(
            f"{where} is a DynamoDB export as {summary.get('outputFormat')}: "
            "ddb-loader reads DYNAMODB_JSON and ION exports."
        )
    files_key = summary.get("manifestFilesS3Key") or f"{prefix}manifest-files.json"
    files_url = f"s3://{bucket}/{files_key}"
    if files_url not in objects:
        raise ConfigError(f"{where} is a partial DynamoDB export: {files_url} is missing.")
    lines = (await _read_all(access, files_url)).splitlines()
    entries = [orjson.loads(line) for line in lines if line.strip()]
    urls = [f"s3://{bucket}/{e['dataFileS3Key']}" for e in entries]
    missing = [u for u in urls if u not in objects]
    if missing:
        raise ConfigError(
            f"{where} is a partial DynamoDB export: {len(missing)} of the {len(urls)} data "
            f"files its manifest names are missing, e.g. {missing[0]}."
        )
    counted = sum(int(e.get("itemCount", 0)) for e in entries)
    if "itemCount" in summary and int(summary["itemCount"]) != counted:
        raise ConfigError(
            f"{where} is a partial DynamoDB export: its summary counts "
            f"{summary['itemCount']:,} items, its data files {counted:,}."
        )
    return urls


async def _read_all(access: _Access, url: str) -> bytes:
    chunks = [chunk async for chunk, _ in object_chunks(url)]
    return b"".join(chunks)


async def object_chunks(url: str) -> AsyncGenerator[tuple[bytes, int], None]:
    """The bytes of one object, a range at a time (the next fetched while this one is
    used), with the bytes read so far.

    Raises:
        SourceError: the object is gone, changed, or a range failed every try.
    """
    access = _client()
    obj = access.objects.get(url) or await _head(access, url)
    offset = 0
    ahead: asyncio.Task[bytes] | None = None
    try:
        while offset < obj.size:
            task = ahead or asyncio.ensure_future(_range(access, obj, offset))
            end = offset + RANGE_BYTES
            ahead = asyncio.ensure_future(_range(access, obj, end)) if end < obj.size else None
            data = await task
            offset += len(data)
            yield data, offset
    finally:
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead


async def _head(access: _Access, url: str) -> S3Object:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split(url)
    try:
        head = await access.client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise SourceError(f"Cannot read {url}: {_reason(exc)}.", path=url) from None
    except BotoCoreError as exc:
        raise SourceError(f"Cannot read {url}: {exc}.", path=url) from None
    obj = S3Object(url, int(head["ContentLength"]), head["ETag"])
    access.objects[url] = obj
    return obj


async def _range(access: _Access, obj: S3Object, start: int) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split(obj.url)
    last = min(obj.size, start + RANGE_BYTES) - 1
    problem = ""
    for attempt in range(RANGE_TRIES):
        try:
            response = await access.client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{last}", IfMatch=obj.etag
            )
            async with response["Body"] as body:
                data: bytes = await body.read()
            if len(data) == last - start + 1:
                return data
            problem = f"a range came back short ({len(data):,} of {last - start + 1:,} bytes)"
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise SourceError(
                    f"{obj.url} changed while it was read (its ETag is no longer {obj.etag}): "
                    "load it again from the start.",
                    path=obj.url,
                ) from None
            problem = _reason(exc)
        except (TimeoutError, BotoCoreError, OSError) as exc:
            problem = str(exc) or type(exc).__name__
        await asyncio.sleep(random.uniform(0, 0.2 * 2**attempt))
    raise SourceError(
        f"Cannot read {obj.url} at byte {start:,} after {RANGE_TRIES} tries: {problem}.",
        path=obj.url,
    )


def size_of(path: str) -> int:
    """An input's size in bytes, for progress (0: unknown, e.g. stdin)."""
    if is_s3(path):
        known = identity(path)
        return known[0] if known else 0
    try:
        return os.path.getsize(path) if path != "-" else 0
    except OSError:
        return 0


def identity(url: str) -> tuple[int, str] | None:
    """(size, ETag) the job saw for an object, for the checkpoint; None: not an object
    of this job's."""
    access = _access.get()
    obj = access.objects.get(url) if access else None
    return (obj.size, obj.etag) if obj else None


class S3File(io.RawIOBase):
    """A seekable file over ranged GETs, for readers that need one (pyarrow's Parquet):
    used from a thread while the job's loop runs the requests."""

    def __init__(self, url: str) -> None:
        self._access = _client()
        self._obj = self._access.objects[url]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._obj.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._obj.size - self._pos)
        if size <= 0:
            return 0
        assert self._access.loop is not None
        future = asyncio.run_coroutine_threadsafe(self._get(self._pos, size), self._access.loop)
        data = future.result()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    async def _get(self, start: int, size: int) -> bytes:
        bucket, key = split(self._obj.url)
        response = await self._access.client.get_object(
            Bucket=bucket,
            Key=key,
            Range=f"bytes={start}-{start + size - 1}",
            IfMatch=self._obj.etag,
        )
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data


def _reason(exc: Any) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '') or 'no message'}"
