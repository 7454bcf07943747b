"""The wire client's own parts: SigV4 exactly as botocore signs, errors mapped as botocore
would classify them."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from loader.client import WireClient, _error
from loader.codec import Request
from loader.errors import ConfigError, RequestRejected, TableNotFound, TransientError
from loader.http import HttpPool
from loader.sigv4 import Signer


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "dynamodb.eu-west-1.amazonaws.com"])
@pytest.mark.parametrize("path", ["/", "/ddb/", "/gateway/a%20b/~x/"])
def test_our_signature_is_botocores_header_for_header(
    token: str | None, host: str, path: str
) -> None:
    body = orjson.dumps({"RequestItems": {"t": [{"PutRequest": {"Item": {"PK": {"S": "é"}}}}]}})
    target = "DynamoDB_20120810.BatchWriteItem"
    request = AWSRequest(
        method="POST",
        url=f"https://{host}{path}",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target},
    )
    credentials = Credentials("AKIDEXAMPLE", "secret/key+", token)
    SigV4Auth(credentials, "dynamodb", "eu-west-1").add_auth(request)
    # Sign at the very second botocore did.
    signed_at = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    stamp = signed_at.replace(tzinfo=datetime.UTC).timestamp()
    ours = Signer("eu-west-1", host, path, now=lambda: stamp).headers(
        target, body, "AKIDEXAMPLE", "secret/key+", token
    )
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")


def _body(code: str, message: str = "m") -> bytes:
    return orjson.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    ],
)
def test_throttling_answers_are_transient_and_marked_throttled(code: str) -> None:
    error = _error(400, _body(code), "http://x/")
    assert isinstance(error, TransientError)
    assert error.throttled


@pytest.mark.parametrize(
    ("reasons", "key_range"),
    [
        (["TableWriteKeyRangeThroughputExceeded"], True),
        (["TableWriteKeyRangeThroughputExceeded", "IndexWriteKeyRangeThroughputExceeded"], True),
        (["TableWriteProvisionedThroughputExceeded"], False),
        (["TableWriteKeyRangeThroughputExceeded", "TableWriteAccountLimitExceeded"], False),
        ([], False),
    ],
)
def test_throttling_reasons_tell_a_hot_key_range_from_the_table_s_limit(
    reasons: list[str], key_range: bool
) -> None:
    body = orjson.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "m",
            "ThrottlingReasons": [
                {"reason": r, "resource": "arn:aws:dynamodb:us-east-1:1:table/t"} for r in reasons
            ],
        }
    )
    error = _error(400, body, "http://x/")
    assert isinstance(error, TransientError)
    assert error.reasons == tuple(reasons)
    assert error.key_range is key_range


def test_server_errors_are_transient_but_not_throttling() -> None:
    for status, body in [(500, _body("InternalServerError")), (503, b""), (502, b"<html>")]:
        error = _error(status, body, "http://x/")
        assert isinstance(error, TransientError)
        assert not error.throttled


@pytest.mark.parametrize(
    ("status", "body", "throttled"),
    [
        (400, _body("ReplicatedWriteConflictException"), False),
        (409, _body("ReplicatedWriteConflictException"), False),
        (400, _body("TransactionInProgressException"), False),
        (400, _body("LimitExceededException"), False),
        (429, _body("TooManyRequestsException"), True),
        (429, b"Too Many Requests", True),
        (400, b"<html><body><h1>400 Bad Request</h1>proxy</body></html>", False),
        (403, b"<html>Access denied by the corporate proxy</html>", False),
        (400, b"", False),
        (400, b'["not", "an", "object"]', False),
    ],
    ids=[
        "replicated-write-conflict",
        "409",
        "transaction-in-progress",
        "limit-exceeded",
        "429",
        "429-text",
        "html-400",
        "html-403",
        "empty-400",
        "json-not-dynamodb",
    ],
)
def test_refusals_of_the_moment_and_answers_not_from_dynamodb_are_sent_again(
    status: int, body: bytes, throttled: bool
) -> None:
    # Rejecting the records would be rejecting them for DynamoDB's (or a proxy's)
    # state, not for what they hold.
    error = _error(status, body, "http://x/")
    assert isinstance(error, TransientError), error
    assert error.throttled is throttled
    assert error.status == status


def test_a_validation_error_is_a_rejected_request_with_its_message() -> None:
    error = _error(400, _body("ValidationException", "Item size has exceeded"), "http://x/")
    assert isinstance(error, RequestRejected)
    assert error.code == "ValidationException"
    assert "Item size has exceeded" in str(error)


def test_missing_tables_and_refused_credentials_are_configuration_errors() -> None:
    missing = _error(400, _body("ResourceNotFoundException", "no table"), "http://x/")
    refused = _error(400, _body("UnrecognizedClientException", "bad key"), "http://x/")
    assert isinstance(missing, ConfigError)
    assert isinstance(refused, ConfigError)
    assert "refused the credentials" in str(refused)


def test_a_missing_table_is_told_by_its_class_with_the_table_and_endpoint() -> None:
    missing = _error(400, _body("ResourceNotFoundException", "no table"), "http://x/", "products")
    assert isinstance(missing, TableNotFound)
    assert (missing.table, missing.endpoint) == ("products", "http://x/")


class _Http:
    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.head = HttpPool("http://db", 1).head

    async def post(
        self, head: bytes, body: bytes, timeout_s: float
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        self.heads.append(head)
        self.bodies.append(body)
        return 200, {}, b'{"UnprocessedItems":{}}'


async def test_encoded_requests_go_on_the_wire_as_the_dicts_they_encode() -> None:
    http = _Http()
    client = WireClient(
        http=http, endpoint="http://db", region="us-east-1", credentials=Credentials("AKID", "s")
    )
    entries = [{"PutRequest": {"Item": {"PK": {"S": f"p{i}"}, "n": {"N": "1"}}}} for i in range(3)]
    await client.batch_write_item({"t": entries})
    await client.batch_write_item({"t": [Request.of(e) for e in entries]})
    assert http.bodies[0] == http.bodies[1]
    two = {"t": [Request.of(e) for e in entries], 'o"dd': [Request.of(entries[0])]}
    await client.batch_write_item(two)
    plain = {"t": entries, 'o"dd': [entries[0]]}
    payload = {"RequestItems": plain, "ReturnConsumedCapacity": "TOTAL"}
    assert http.bodies[2] == orjson.dumps(payload)
    assert orjson.loads(http.bodies[1])["RequestItems"] == {"t": entries}
    head = http.heads[0].decode()
    assert head.startswith("POST / HTTP/1.1\r\nHost: db\r\n")
    assert f"Content-Length: {len(http.bodies[0])}\r\n\r\n" in head


class _Answer(_Http):
    def __init__(self, body: bytes, crc: bytes | None = None) -> None:
        super().__init__()
        self.body, self.crc = body, crc

    async def post(
        self, head: bytes, body: bytes, timeout_s: float
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        headers = {b"x-amz-crc32": self.crc} if self.crc is not None else {}
        return 200, headers, self.body


@pytest.mark.parametrize(
    ("body", "crc"),
    [
        (b"<html>gateway</html>", None),
        (b'{"UnprocessedItems": {', None),
        (b"[]", None),
        (b'{"UnprocessedItems":{}}', b"not-a-number"),
        (b'{"UnprocessedItems":{}}', b"12345"),
    ],
    ids=["html", "cut-json", "json-array", "crc-not-a-number", "crc-wrong"],
)
async def test_a_200_that_is_not_dynamodb_s_whole_answer_is_transient(
    body: bytes, crc: bytes | None
) -> None:
    client = WireClient(
        http=_Answer(body, crc),
        endpoint="http://db",
        region="us-east-1",
        credentials=Credentials("AKID", "s"),
    )
    with pytest.raises(TransientError) as caught:
        await client.batch_write_item({"t": [{"PutRequest": {"Item": {"PK": {"S": "p"}}}}]})
    assert not caught.value.throttled


class _Refreshing:
    """Refreshable credentials whose refresh fails from the second call on."""

    def __init__(self, expiry: float) -> None:
        self.calls = 0
        self.expiry = expiry

    def refresh_needed(self) -> bool:
        return True

    def get_frozen_credentials(self) -> Any:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError(
                "Credentials were refreshed, but the refreshed credentials are still expired."
            )
        return Credentials("AKID", "s").get_frozen_credentials()


@pytest.mark.parametrize("still_valid", [True, False])
async def test_a_failed_credentials_refresh_is_no_traceback(
    monkeypatch: pytest.MonkeyPatch, still_valid: bool
) -> None:
    credentials = _Refreshing(time.time() + (600 if still_valid else -1))
    client = WireClient(
        http=_Http(), endpoint="http://db", region="us-east-1", credentials=credentials
    )
    await client.frozen_credentials()
    monkeypatch.setattr(client, "_frozen_until", 0.0)  # due for a refresh
    if still_valid:
        # The old credentials still sign while the refresh is retried.
        assert (await client.frozen_credentials()).access_key == "AKID"
    else:
        with pytest.raises(TransientError, match="could not be refreshed"):
            await client.frozen_credentials()


@pytest.mark.parametrize(
    ("env", "region"),
    [
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, None),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "us-east-2"),
        ({}, "ap-south-1"),
        ({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_CA_BUNDLE": "/etc/company-ca.pem"}, None),
        ({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_SESSION_TOKEN": "tok"}, None),
        (
            {
                "AWS_DEFAULT_REGION": "eu-west-1",
                "AWS_SECURITY_TOKEN": "a",
                "AWS_SESSION_TOKEN": "b",
            },
            None,
        ),
    ],
)
def test_explicit_settings_resolve_as_botocore_resolves_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], region: str | None
) -> None:
    from loader.credentials import from_environment, resolve

    for name in (
        *("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_REGION"),
        "AWS_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = "http://127.0.0.1:8000"
    fast = from_environment(url, region, None)
    assert fast is not None
    endpoint, found_region, credentials, ca_bundle = resolve(url, region, None)
    frozen = credentials.get_frozen_credentials()
    assert fast[:2] == (endpoint, found_region)
    assert (fast[2].access_key, fast[2].secret_key, fast[2].token) == tuple(frozen)[:3]
    assert fast[3] == ca_bundle


def test_anything_less_explicit_is_left_to_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    from loader.credentials import from_environment

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert from_environment(None, None, None) is None  # the endpoint comes from rules
    assert from_environment("http://x:1", None, "prod") is None  # a profile's keys win
    # An https endpoint's CA bundle may be a config file's: botocore reads it.
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    assert from_environment("https://x:1", None, None) is None
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/company-ca.pem")
    explicit = from_environment("https://x:1", None, None)
    assert explicit is not None
    assert explicit[3] == "/etc/company-ca.pem"
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2030-01-01T00:00:00Z")
    assert from_environment("http://x:1", None, None) is None


@pytest.mark.parametrize(
    ("env", "endpoint", "proxy"),
    [
        (
            {"HTTPS_PROXY": "http://proxy:3128"},
            "https://dynamodb.eu-west-1.amazonaws.com",
            "http://proxy:3128",
        ),
        ({"https_proxy": "http://proxy:3128"}, "https://db.example", "http://proxy:3128"),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "http://127.0.0.1:8000", None),
        ({"HTTP_PROXY": "http://proxy:8080"}, "http://10.0.0.5:8000", "http://proxy:8080"),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".amazonaws.com"},
            "https://dynamodb.eu-west-1.amazonaws.com",
            None,
        ),
        (
            {"HTTP_PROXY": "http://p:1", "no_proxy": "127.0.0.1,localhost"},
            "http://127.0.0.1:8000",
            None,
        ),
        ({}, "https://db.example", None),
    ],
)
def test_the_proxy_is_the_one_botocore_would_use(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], endpoint: str, proxy: str | None
) -> None:
    from botocore.utils import get_environ_proxies

    from loader.credentials import proxy_for

    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert proxy_for(endpoint) == proxy
    assert get_environ_proxies(endpoint).get(endpoint.split(":")[0]) == proxy
