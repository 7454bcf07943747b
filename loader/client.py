"""The DynamoDB client seam: a small Protocol, the aioboto3 implementation, and the
one place where botocore's and aiohttp's errors become ours.

Retries are ours, not botocore's (`total_max_attempts=1`): a worker must see every
throttle to back off and count it, and a later write on a key must not overtake
an earlier one that botocore is quietly retrying.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from loader.errors import ConfigError

THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "TooManyRequestsException",
    }
)


class TransientError(Exception):
    """A request that may succeed if sent again: throttled, 5xx, or a broken connection."""

    def __init__(self, message: str, *, throttled: bool) -> None:
        super().__init__(message)
        self.throttled = throttled


class RequestRejected(Exception):
    """DynamoDB refused the request's contents (ValidationException and kin)."""


class DynamoClient(Protocol):
    """What the loader needs from DynamoDB; responses are botocore-shaped dicts."""

    async def batch_write_item(self, request_items: dict[str, list[Any]]) -> dict[str, Any]: ...

    async def batch_get_item(self, request_items: dict[str, Any]) -> dict[str, Any]: ...

    async def describe_table(self, table: str) -> dict[str, Any]: ...

    async def create_table(self, **kwargs: Any) -> dict[str, Any]: ...


class BotoClient:
    """`DynamoClient` over an aioboto3 client; translates every foreign error."""

    def __init__(self, client: Any, endpoint: str) -> None:
        self._client = client
        self._endpoint = endpoint

    async def batch_write_item(self, request_items: dict[str, list[Any]]) -> dict[str, Any]:
        return await self._call(
            "batch_write_item", RequestItems=request_items, ReturnConsumedCapacity="TOTAL"
        )

    async def batch_get_item(self, request_items: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            "batch_get_item", RequestItems=request_items, ReturnConsumedCapacity="TOTAL"
        )

    async def describe_table(self, table: str) -> dict[str, Any]:
        return await self._call("describe_table", TableName=table)

    async def create_table(self, **kwargs: Any) -> dict[str, Any]:
        return await self._call("create_table", **kwargs)

    async def _call(self, name: str, **kwargs: Any) -> dict[str, Any]:
        import aiohttp
        import botocore.exceptions as bx

        try:
            response: dict[str, Any] = await getattr(self._client, name)(**kwargs)
            return response
        except bx.ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            message = error.get("Message", "") or str(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in THROTTLE_CODES:
                raise TransientError(f"{code}: {message}", throttled=True) from exc
            if status >= 500 or code in ("InternalServerError", "ServiceUnavailable"):
                raise TransientError(f"{code or status}: {message}", throttled=False) from exc
            if code == "ResourceNotFoundException":
                raise ConfigError(f"Table not found at {self._endpoint}: {message}") from None
            if code in (
                "UnrecognizedClientException",
                "InvalidSignatureException",
                "AccessDeniedException",
                "ExpiredTokenException",
            ):
                raise ConfigError(f"DynamoDB refused the credentials: {message}") from None
            raise RequestRejected(f"{code}: {message}") from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError):
            raise ConfigError(
                "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "or pass --profile."
            ) from None
        except bx.EndpointConnectionError as exc:
            raise TransientError(
                f"cannot connect to {self._endpoint}: {exc}", throttled=False
            ) from exc
        except (bx.ConnectionError, bx.HTTPClientError, aiohttp.ClientError, OSError) as exc:
            raise TransientError(f"connection failed: {exc}", throttled=False) from exc


@asynccontextmanager
async def open_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    connections: int,
) -> AsyncIterator[BotoClient]:
    """An aioboto3 DynamoDB client with our retry policy and a pool for every worker.

    Raises:
        ConfigError: the profile does not exist or no region can be found.
    """
    import aioboto3
    import botocore.exceptions as bx
    from botocore.config import Config

    try:
        session = aioboto3.Session(profile_name=profile, region_name=region)
    except bx.ProfileNotFound:
        raise ConfigError(f"AWS profile {profile!r} is not in your AWS configuration.") from None
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=connections,
        parameter_validation=False,
        connect_timeout=5,
        read_timeout=30,
        tcp_keepalive=True,
    )
    try:
        context = session.client("dynamodb", endpoint_url=endpoint_url, config=config)
        async with context as client:
            yield BotoClient(client, client.meta.endpoint_url)
    except bx.NoRegionError:
        raise ConfigError("No AWS region: pass --region or set AWS_REGION.") from None
