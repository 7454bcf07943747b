"""Reading an S3 object by ranges: a range that fails is tried again, an object that
changed or keeps failing stops the job with a sentence naming it and the byte."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from loader.errors import SourceError
from loader.sources import s3


class Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aenter__(self) -> Body:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def read(self) -> bytes:
        return self._data


class FlakyS3:
    """Serves `data`; the first `failures` GETs fail as `how` says."""

    def __init__(self, data: bytes, failures: int, how: str) -> None:
        self.data, self.failures, self.how, self.calls = data, failures, how, 0

    async def get_object(self, *, Bucket: str, Key: str, Range: str, IfMatch: str) -> Any:
        self.calls += 1
        start, end = (int(x) for x in Range.removeprefix("bytes=").split("-"))
        if self.calls <= self.failures:
            if self.how == "500":
                error = {"Error": {"Code": "InternalError", "Message": "try again"}}
                raise ClientError(error, "GetObject")
            if self.how == "changed":
                raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "GetObject")
            if self.how == "short":
                return {"Body": Body(self.data[start : end // 2])}
            raise ConnectionResetError("reset by peer")
        return {"Body": Body(self.data[start : end + 1])}


def access(client: FlakyS3) -> s3._Access:
    obj = s3.S3Object("s3://b/k.jsonl", len(client.data), '"e1"')
    return s3._Access(client, objects={obj.url: obj})


@pytest.fixture(autouse=True)
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    async def instant(_: float) -> None:
        return None

    monkeypatch.setattr(s3.asyncio, "sleep", instant)


@pytest.mark.parametrize("how", ["500", "short", "reset"])
async def test_a_range_that_fails_a_few_times_is_read_whole(how: str) -> None:
    client = FlakyS3(b"x" * 5000, failures=3, how=how)
    got = await s3._range(access(client), access(client).objects["s3://b/k.jsonl"], 0)
    assert got == b"x" * 5000
    assert client.calls == 4


async def test_a_range_that_keeps_failing_names_the_object_and_the_byte() -> None:
    client = FlakyS3(b"x" * 5000, failures=99, how="500")
    a = access(client)
    with pytest.raises(SourceError, match=r"s3://b/k.jsonl at byte 0 after 5 tries: InternalError"):
        await s3._range(a, a.objects["s3://b/k.jsonl"], 0)


async def test_an_object_replaced_mid_read_is_not_spliced() -> None:
    client = FlakyS3(b"x" * 5000, failures=1, how="changed")
    a = access(client)
    with pytest.raises(SourceError, match="changed while it was read"):
        await s3._range(a, a.objects["s3://b/k.jsonl"], 0)
    assert client.calls == 1
