"""The DynamoDB client seam: a small Protocol, the one implementation, and the one
place where foreign errors (HTTP, sockets, botocore) become ours.

The DynamoDB wire protocol is one JSON POST whose body *is* the AttributeValue
JSON the loader already holds. So requests are serialised with orjson, signed
with SigV4 (loader.sigv4), and sent over a small keep-alive pool (loader.http); botocore
still resolves the credentials, the region and the endpoint (loader.credentials), once,
at the start. botocore's request path (per-shape serialiser, hooks, signing, parsing)
costs many times this one (benchmarks/client_cost.py measures both), and its retries
would hide throttles from the workers, which must see each one to back off and to keep
per-key order.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from loader.codec import Request
from loader.credentials import (
    Resolved,
    StaticCredentials,
    from_environment,
    proxy_for,
    resolve,
)
from loader.errors import (
    ConfigError,
    RequestRejected,
    TableNotFound,
    TransientError,
    TransportError,
)
from loader.http import HttpPool
from loader.sigv4 import Signer

CREDENTIALS_CHECK_S = 10.0  # refreshable credentials are re-read (in a thread) this often

TARGET_PREFIX = "DynamoDB_20120810."
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
# Refusals of the moment, not of the request: sent again later, they succeed.
RETRYABLE_CODES = frozenset(
    {
        "InternalServerError",
        "ServiceUnavailable",
        "ReplicatedWriteConflictException",  # multi-Region strongly consistent tables
        "TransactionConflictException",
        "TransactionInProgressException",
        "LimitExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
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
        self._signer = Signer(region, self._host, self._path)
        self._timeout = read_timeout_s
        self._static = not hasattr(credentials, "refresh_needed")
        self._frozen: Any = None
        self._frozen_until = 0.0
        self.region = region
        self.endpoint = endpoint
        self.profile: str | None = None
        self.ca_bundle: str | None = None

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
        head = self._http.head(headers, len(body))
        status, answer, data = await self._post(head, body)
        crc = answer.get(b"x-amz-crc32")
        # A header that is no number was corrupted too.
        if crc is not None and (not crc.strip().isdigit() or int(crc) != zlib.crc32(data)):
            raise TransientError(
                "response failed its CRC32 check (corrupted in transit)", throttled=False
            )
        if status == 200:
            return _result(data, self._endpoint)
        raise _error(status, data, self._endpoint, str(payload.get("TableName", "")))

    async def _post(self, head: bytes, body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        try:
            result: tuple[int, dict[bytes, bytes], bytes] = await self._http.post(
                head, body, self._timeout
            )
        except ssl.SSLCertVerificationError as exc:
            # No retry makes a certificate trusted: a company's TLS-inspecting proxy, or
            # a gateway's own authority, needs its CA named.
            raise ConfigError(
                f"The TLS certificate of {self._host} is not trusted "
                f"({exc.verify_message or exc.reason}): set AWS_CA_BUNDLE, or ca_bundle in "
                "the profile, to the file of the authority that signed it."
            ) from None
        except (TransportError, OSError, TimeoutError) as exc:
            reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
            raise TransientError(
                f"connection to {self._endpoint} failed ({reason})", throttled=False
            ) from exc
        return result

    async def frozen_credentials(self) -> Any:
        """The credentials to sign with now (access_key, secret_key, token, …)."""
        if self._static:
            if self._frozen is None:
                self._frozen = self._credentials.get_frozen_credentials()
            return self._frozen
        now = time.monotonic()
        if self._frozen is None or now >= self._frozen_until:
            # Refreshable credentials (SSO, roles) renew themselves here when near expiry.
            try:
                self._frozen = await asyncio.to_thread(self._credentials.get_frozen_credentials)
            except Exception as exc:  # botocore's, of many kinds: a refresh that failed
                if self._frozen is not None and not self._expired():
                    self._frozen_until = now + 1.0  # the old ones still sign: try again soon
                    return self._frozen
                raise TransientError(
                    f"the credentials could not be refreshed ({type(exc).__name__}: {exc})",
                    throttled=False,
                ) from exc
            self._frozen_until = now + CREDENTIALS_CHECK_S
        return self._frozen

    def _expired(self) -> bool:
        expiry = self.credentials_expiry()
        return expiry is not None and expiry <= time.time()

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


def _result(data: bytes, endpoint: str) -> dict[str, Any]:
    """A 200's body. One that is no JSON object did not come whole from DynamoDB (a
    proxy's page, a cut body): sent again, the request gets DynamoDB's answer."""
    try:
        result = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise TransientError(
            f"{endpoint} answered 200 with a body that is not DynamoDB's: {_snippet(data)}",
            throttled=False,
        )
    return result


def _snippet(data: bytes) -> str:
    return " ".join(data[:120].decode(errors="replace").split()) or "(empty)"


def _error(status: int, data: bytes, endpoint: str, table: str = "") -> Exception:
    try:
        parsed = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or "__type" not in parsed:
        # Not DynamoDB's answer (an HTML page from a proxy or a load balancer): it says
        # nothing about the request, so the request is sent again.
        return TransientError(
            f"HTTP {status} from {endpoint}, not from DynamoDB: {_snippet(data)}",
            throttled=status == 429,
            status=status,
        )
    code = str(parsed.get("__type", "")).rsplit("#", 1)[-1]
    message = parsed.get("message") or parsed.get("Message") or data[:200].decode(errors="replace")
    text = f"{code or status}: {message}"
    if code in THROTTLE_CODES:
        reasons = parsed.get("ThrottlingReasons")
        named = (
            tuple(str(r.get("reason", "")) for r in reasons if isinstance(r, dict))
            if isinstance(reasons, list)
            else ()
        )
        return TransientError(text, throttled=True, code=code, status=status, reasons=named)
    if status == 429:
        return TransientError(text, throttled=True, code=code, status=status)
    if status >= 500 or status == 409 or code in RETRYABLE_CODES:
        return TransientError(text, throttled=False, code=code, status=status)
    if code == "ResourceNotFoundException":
        return TableNotFound(
            f"Table not found at {endpoint}: {message}", table=table, endpoint=endpoint
        )
    if code in CREDENTIAL_CODES:
        return ConfigError(f"DynamoDB refused the credentials: {message}")
    return RequestRejected(text, code=code, status=status)


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
        credentials, ca_bundle = resolved.credentials_object(), resolved.ca_bundle
    elif (explicit := from_environment(endpoint_url, region, profile)) is not None:
        endpoint, resolved_region, credentials, ca_bundle = explicit
    else:
        endpoint, resolved_region, credentials, ca_bundle = await asyncio.to_thread(
            resolve, endpoint_url, region, profile
        )
    try:
        http = HttpPool(endpoint, connections, ca_bundle=ca_bundle, proxy=proxy_for(endpoint))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    client = WireClient(
        http=http, endpoint=endpoint, region=resolved_region, credentials=credentials
    )
    client.profile = profile
    client.ca_bundle = ca_bundle
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
        client.ca_bundle,
    )
