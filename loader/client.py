"""The DynamoDB client seam: a small Protocol, the one implementation, and the one
place where foreign errors (HTTP, sockets, botocore) become ours.

The DynamoDB wire protocol is one JSON POST whose body *is* the AttributeValue
JSON the loader already holds. So requests are serialised with orjson, signed
with SigV4 here, and sent over a small keep-alive pool (loader.http); botocore still
resolves the credentials (env, profiles, SSO, instance roles, refresh), the region and
the endpoint (`--endpoint-url`, `AWS_ENDPOINT_URL_DYNAMODB`), once, at the start.
In a py-spy profile of 50,000 items, botocore's request path (per-shape serialiser,
hooks, signing, parsing) was 52% of the loader's CPU; this path is a few percent.
botocore's retries would also hide throttles from the workers, which must see each one
to back off and to keep per-key order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import os
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from loader.codec import Request
from loader.errors import (
    ConfigError,
    RequestRejected,
    TableNotFound,
    TransientError,
    TransportError,
)
from loader.http import HttpPool, request_head

CREDENTIALS_CHECK_S = 10.0  # refreshable credentials are re-read (in a thread) this often

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
USER_AGENT = "ddb-loader/0.1"

THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "TooManyRequestsException",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "AccessDeniedException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
    }
)


class DynamoClient(Protocol):
    """What the loader needs from DynamoDB; requests and responses are wire-format dicts."""

    async def batch_write_item(self, request_items: dict[str, list[Any]]) -> dict[str, Any]: ...

    async def batch_get_item(self, request_items: dict[str, Any]) -> dict[str, Any]: ...

    async def describe_table(self, table: str) -> dict[str, Any]: ...

    async def create_table(self, **kwargs: Any) -> dict[str, Any]: ...


class Signer:
    """AWS Signature Version 4 for DynamoDB's one shape of request: POST / with a JSON body.

    Equal, header for header, to botocore's SigV4Auth (tests/test_client.py checks it),
    at a tenth of its cost; the day's signing key is derived once a day.
    """

    def __init__(self, region: str, host: str, now: Callable[[], float] = time.time) -> None:
        self._region = region
        self._host = host
        self._now = now
        self._second = -1
        self._stamp = ""
        self._day = ""
        self._key = b""
        self._key_for = ""

    def headers(
        self, target: str, body: bytes, access_key: str, secret_key: str, token: str | None
    ) -> dict[str, str]:
        second = int(self._now())
        if second != self._second:  # the stamp changes once a second, not per request
            self._second = second
            self._stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        stamp = self._stamp
        day = stamp[:8]
        if day != self._day or self._key_for != secret_key:
            key = _hmac(f"AWS4{secret_key}".encode(), day)
            for part in (self._region, "dynamodb", "aws4_request"):
                key = _hmac(key, part)
            self._day, self._key, self._key_for = day, key, secret_key
        headers = {
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": target,
            "X-Amz-Date": stamp,
        }
        names = "content-type;host;x-amz-date"
        canonical_headers = f"content-type:{CONTENT_TYPE}\nhost:{self._host}\nx-amz-date:{stamp}\n"
        if token:
            headers["X-Amz-Security-Token"] = token
            names += ";x-amz-security-token"
            canonical_headers += f"x-amz-security-token:{token}\n"
        names += ";x-amz-target"
        canonical_headers += f"x-amz-target:{target}\n"
        canonical = f"POST\n/\n\n{canonical_headers}\n{names}\n{hashlib.sha256(body).hexdigest()}"
        scope = f"{day}/{self._region}/dynamodb/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(self._key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return headers


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class WireClient:
    """`DynamoClient` over `HttpPool`: serialise, sign, send, check, parse, translate.

    `credentials` is botocore-like: `get_frozen_credentials()` gives access_key,
    secret_key and token. Static ones (no `refresh_needed`) are frozen once; refreshable
    ones are re-read every CREDENTIALS_CHECK_S in a thread, so a refresh (an STS or
    metadata call) never blocks the event loop, and botocore renews them well before
    they expire (15 minutes).
    """

    def __init__(
        self,
        *,
        http: Any,
        endpoint: str,
        region: str,
        credentials: Any,
        read_timeout_s: float = 30.0,
    ) -> None:
        self._http = http
        self._endpoint = endpoint.rstrip("/") + "/"
        self._credentials = credentials
        self._host = urlsplit(endpoint).netloc
        self._path = urlsplit(endpoint).path.rstrip("/") + "/"
        self._signer = Signer(region, self._host)
        self._timeout = read_timeout_s
        self._static = not hasattr(credentials, "refresh_needed")
        self._frozen: Any = None
        self._frozen_until = 0.0
        self.region = region
        self.endpoint = endpoint
        self.profile: str | None = None

    async def batch_write_item(self, request_items: dict[str, list[Any]]) -> dict[str, Any]:
        payload = {"RequestItems": request_items, "ReturnConsumedCapacity": "TOTAL"}
        return await self.call("BatchWriteItem", payload, _write_body(request_items))

    async def batch_get_item(self, request_items: dict[str, Any]) -> dict[str, Any]:
        return await self.call(
            "BatchGetItem", {"RequestItems": request_items, "ReturnConsumedCapacity": "TOTAL"}
        )

    async def describe_table(self, table: str) -> dict[str, Any]:
        return await self.call("DescribeTable", {"TableName": table})

    async def create_table(self, **kwargs: Any) -> dict[str, Any]:
        return await self.call("CreateTable", kwargs)

    async def call(
        self, operation: str, payload: dict[str, Any], body: bytes | None = None
    ) -> dict[str, Any]:
        """One DynamoDB API call.

        Raises:
            TransientError: throttled, 5xx, a corrupted answer or a broken connection.
            RequestRejected: a 4xx about the request itself (ValidationException, …).
            ConfigError: the table is missing or the credentials are refused or absent.
        """
        if body is None:
            body = orjson.dumps(payload, default=_encoded)
        frozen = await self.frozen_credentials()
        headers = self._signer.headers(
            TARGET_PREFIX + operation, body, frozen.access_key, frozen.secret_key, frozen.token
        )
        headers["User-Agent"] = USER_AGENT
        headers["Accept-Encoding"] = "identity"
        head = request_head(self._path, self._host, headers, len(body))
        try:
            status, answer, data = await self._http.post(head, body, self._timeout)
        except (TransportError, OSError, TimeoutError) as exc:
            reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
            raise TransientError(
                f"connection to {self._endpoint} failed ({reason})", throttled=False
            ) from exc
        crc = answer.get(b"x-amz-crc32")
        if crc is not None and int(crc) != zlib.crc32(data) & 0xFFFFFFFF:
            raise TransientError(
                "response failed its CRC32 check (corrupted in transit)", throttled=False
            )
        if status == 200:
            result: dict[str, Any] = orjson.loads(data) if data else {}
            return result
        raise _error(status, data, self._endpoint, str(payload.get("TableName", "")))

    async def frozen_credentials(self) -> Any:
        """The credentials to sign with now (access_key, secret_key, token, …)."""
        if self._static:
            if self._frozen is None:
                self._frozen = self._credentials.get_frozen_credentials()
            return self._frozen
        now = time.monotonic()
        if self._frozen is None or now >= self._frozen_until:
            # Refreshable credentials (SSO, roles) renew themselves here when near expiry.
            self._frozen = await asyncio.to_thread(self._credentials.get_frozen_credentials)
            self._frozen_until = now + CREDENTIALS_CHECK_S
        return self._frozen

    def credentials_expiry(self) -> float | None:
        """When the credentials expire (epoch seconds); None: they do not."""
        if self._static:
            return None
        expiry = getattr(self._credentials, "_expiry_time", None)  # botocore's own
        if expiry is None:
            expiry = getattr(self._credentials, "expiry", None)
        if expiry is None or isinstance(expiry, int | float):
            return expiry
        return float(expiry.timestamp())


@dataclasses.dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Credentials that do not expire (keys from the environment or a profile)."""

    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


class ShippedCredentials:
    """Expiring credentials handed to a writer process by the main process: used as they
    are until 15 minutes before they expire, then resolved afresh by botocore here (an
    import and a credential chain only a long job pays, and only in a thread)."""

    def __init__(
        self, frozen: StaticCredentials, expiry: float, profile: str | None, region: str
    ) -> None:
        self._frozen = frozen
        self.expiry = expiry
        self._profile = profile
        self._region = region
        self._own: Any = None

    def refresh_needed(self) -> bool:
        return self._own is None and time.time() >= self.expiry - 900

    def get_frozen_credentials(self) -> Any:
        if self._own is None and time.time() >= self.expiry - 900:
            import botocore.session

            session = botocore.session.Session(profile=self._profile)
            session.set_config_variable("region", self._region)
            self._own = session.get_credentials()
            if self._own is None:
                raise ConfigError("The AWS credentials expired and none are found anew.")
        if self._own is not None:
            return self._own.get_frozen_credentials()
        return self._frozen


def _write_body(request_items: dict[str, list[Any]]) -> bytes | None:
    """A BatchWriteItem body joined from encoded requests, byte for byte what orjson
    makes of the payload; None when some entry is not a `Request` (orjson then)."""
    parts = [b'{"RequestItems":{']
    for number, (table, entries) in enumerate(request_items.items()):
        if not all(type(entry) is Request for entry in entries):
            return None
        if number:
            parts.append(b",")
        parts += (orjson.dumps(table), b":[", b",".join([e.json for e in entries]), b"]")
    parts.append(b'},"ReturnConsumedCapacity":"TOTAL"}')
    return b"".join(parts)


def _encoded(value: Any) -> Any:
    # Requests arrive already encoded (loader.codec.Request): their bytes go in as they are.
    if type(value) is Request:
        return orjson.Fragment(value.json)
    raise TypeError(f"cannot send a {type(value).__name__} to DynamoDB")


def _error(status: int, data: bytes, endpoint: str, table: str = "") -> Exception:
    try:
        parsed = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError:
        parsed = {}
    code = str(parsed.get("__type", "")).rsplit("#", 1)[-1]
    message = parsed.get("message") or parsed.get("Message") or data[:200].decode(errors="replace")
    text = f"{code or status}: {message}"
    if code in THROTTLE_CODES:
        return TransientError(text, throttled=True, code=code, status=status)
    if status >= 500 or code in ("InternalServerError", "ServiceUnavailable"):
        return TransientError(text, throttled=False, code=code, status=status)
    if code == "ResourceNotFoundException":
        return TableNotFound(
            f"Table not found at {endpoint}: {message}", table=table, endpoint=endpoint
        )
    if code in CREDENTIAL_CODES:
        return ConfigError(f"DynamoDB refused the credentials: {message}")
    return RequestRejected(text, code=code, status=status)


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """What botocore resolved for a client, to hand to a writer process as it is."""

    endpoint: str
    region: str
    credentials: StaticCredentials
    expiry: float | None  # of the credentials; None: they do not expire
    profile: str | None

    def credentials_object(self) -> Any:
        if self.expiry is None:
            return self.credentials
        return ShippedCredentials(self.credentials, self.expiry, self.profile, self.region)


def resolve(endpoint_url: str | None, region: str | None, profile: str | None) -> Any:
    """(endpoint, region, credentials) as boto3 would find them (profiles, env, endpoint
    variables and rules). Synchronous: botocore only reads files and the environment
    here (and, for instance roles, the metadata service).

    Raises:
        ConfigError: unknown profile, no region, or no credentials.
    """
    import botocore.exceptions as bx
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile)
        if region:
            session.set_config_variable("region", region)
        credentials = session.get_credentials()
        # A botocore client only to resolve the endpoint exactly as boto3 does; it sends nothing.
        resolver = session.create_client("dynamodb", region_name=region, endpoint_url=endpoint_url)
        endpoint = resolver.meta.endpoint_url
        resolved_region = resolver.meta.region_name
        resolver.close()
    except bx.ProfileNotFound:
        raise ConfigError(f"AWS profile {profile!r} is not in your AWS configuration.") from None
    except bx.NoRegionError:
        raise ConfigError("No AWS region: pass --region or set AWS_DEFAULT_REGION.") from None
    except (bx.BotoCoreError, ValueError) as exc:
        raise ConfigError(f"AWS configuration error: {exc}") from None
    if credentials is None:
        raise ConfigError(
            "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or pass --profile."
        )
    return endpoint, resolved_region, credentials


def from_environment(
    endpoint_url: str | None, region: str | None, profile: str | None
) -> tuple[str, str, StaticCredentials] | None:
    """What `resolve` would find, when it is all explicit and botocore need not be asked:
    an --endpoint-url (DynamoDB Local, test endpoints), no --profile, keys in the
    environment (botocore's first credential provider, which wins then), a region from
    --region or AWS_DEFAULT_REGION (which beats any config file). None otherwise.

    Saves the botocore import and session (~0.35 s of CPU, 8% of a 100k-item load).
    """
    env = os.environ
    access_key = env.get("AWS_ACCESS_KEY_ID", "")
    secret_key = env.get("AWS_SECRET_ACCESS_KEY", "")
    region = region or env.get("AWS_DEFAULT_REGION", "")
    if not endpoint_url or profile or not access_key or not secret_key or not region:
        return None
    if env.get("AWS_CREDENTIAL_EXPIRATION"):
        return None  # refreshable environment credentials: botocore's business
    token = None
    for name in ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):  # botocore's order
        if name in env:
            token = env[name]
            break
    return endpoint_url, region, StaticCredentials(access_key, secret_key, token)


@asynccontextmanager
async def open_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    connections: int,
    resolved: Resolved | None = None,
) -> AsyncIterator[WireClient]:
    """A client configured the way boto3 would be (profiles, env, endpoint variables), or
    as `resolved` says (a writer process: what its main process resolved).

    Raises:
        ConfigError: unknown profile, no region, or no credentials.
    """
    if resolved is not None:
        endpoint, resolved_region = resolved.endpoint, resolved.region
        credentials = resolved.credentials_object()
    elif (explicit := from_environment(endpoint_url, region, profile)) is not None:
        endpoint, resolved_region, credentials = explicit
    else:
        endpoint, resolved_region, credentials = await asyncio.to_thread(
            resolve, endpoint_url, region, profile
        )
    try:
        http = HttpPool(endpoint, connections)
    except ValueError as exc:
        raise ConfigError(f"Bad endpoint URL: {exc}") from None
    client = WireClient(
        http=http, endpoint=endpoint, region=resolved_region, credentials=credentials
    )
    client.profile = profile
    try:
        yield client
    finally:
        await http.close()


async def resolved_of(client: WireClient) -> Resolved:
    """What a writer process needs to talk to DynamoDB as `client` does, without botocore."""
    frozen = await client.frozen_credentials()
    return Resolved(
        client.endpoint,
        client.region,
        StaticCredentials(frozen.access_key, frozen.secret_key, frozen.token),
        client.credentials_expiry(),
        client.profile,
    )
