"""Fault modes of ``tests.faultproxy`` beyond WCU budgets and coin-flip 5xx answers.

Each function here decides one kind of fault from a ``FaultConfig`` and builds the
answer that stands in for (or replaces) upstream's; ``FaultProxy`` only wires them into
its request path and counts them.  The wire helpers the proxy answers with live here
too, so both modules agree byte for byte on what a DynamoDB answer looks like.
"""

from __future__ import annotations

import json
import math
import random
import uuid
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

if TYPE_CHECKING:
    from tests.faultproxy import FaultConfig

JSON_CT = "application/x-amz-json-1.0"
DDB = "com.amazonaws.dynamodb.v20120810#"
# The account and region are fixed: DynamoDB Local answers for any endpoint.
TABLE_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/"
# The writes a table still being created refuses (its DescribeTable is rewritten).
CREATING_OPS = frozenset({"BatchWriteItem", "PutItem"})
OUTAGE_KINDS = frozenset({"503", "reset", "html"})
# A ThrottlingReason is ResourceType + OperationType + LimitType (DynamoDB API reference,
# "ThrottlingReason"); the proxy throttles only table writes, never an index's.
KEY_RANGE_REASON = "TableWriteKeyRangeThroughputExceeded"
TABLE_REASONS = {
    # A provisioned table over its WCU, and an on-demand table over its configured maximum.
    "ProvisionedThroughputExceededException": "TableWriteProvisionedThroughputExceeded",
    "ThrottlingException": "TableWriteMaxOnDemandThroughputExceeded",
}
# The budgets a refused item can name (see FaultProxy._take); these two are key ranges.
KEY_RANGE_LIMITS = frozenset({"partition", "hot_key"})
# Per-request chances of the modes here, drawn in this order after the proxy's own.
CHANCES = ("p_409", "p_429", "p_html_400", "p_bad_json_200", "p_bad_crc")

Json = dict[str, Any]
Injection = tuple[str, web.Response]  # the ProxyStats counter to bump, and the answer

_BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_PROXY_BLOCK_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Request blocked</title></head>\n<body>"
    "<h1>400 Bad Request</h1><p>Your request was blocked by the corporate web gateway."
    " Contact the IT service desk and quote reference 4711.</p></body></html>\n"
)


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def with_body(
    payload: Json, base: CIMultiDict[str] | None = None
) -> tuple[CIMultiDict[str], bytes]:
    """Headers and body for a JSON answer; botocore rejects one whose CRC32 header mismatches."""
    body = dumps(payload)
    headers: CIMultiDict[str] = CIMultiDict(base or {})
    headers["Content-Type"] = JSON_CT
    headers["x-amz-crc32"] = str(zlib.crc32(body) & 0xFFFFFFFF)
    headers.setdefault("x-amzn-RequestId", uuid.uuid4().hex)
    return headers, body


def json_response(status: int, payload: Json, base: CIMultiDict[str] | None = None) -> web.Response:
    headers, body = with_body(payload, base)
    return web.Response(status=status, body=body, headers=headers)


def error(status: int, type_: str, message: str) -> web.Response:
    return json_response(status, {"__type": type_, "message": message})


def throttle(name: str, reasons: list[Json] | None = None) -> web.Response:
    if name == "ThrottlingException":
        type_ = "com.amazon.coral.availability#ThrottlingException"
        message = "Rate of requests exceeds the allowed throughput."
    else:
        type_ = DDB + name
        message = (
            "The level of configured provisioned throughput for the table was "
            "exceeded. Consider increasing your provisioning level with the "
            "UpdateTable API."
        )
    payload: Json = {"__type": type_, "message": message}
    if reasons:
        payload["ThrottlingReasons"] = reasons
    return json_response(400, payload)


def throttling_reasons(throttle_error: str, refusals: Iterable[tuple[str, str]]) -> list[Json]:
    """DynamoDB's ThrottlingReasons for (limit, table) refusals, one per reason and table.

    A partition's or the hot key's budget is a key range's: the loader backs off only
    those keys when every reason names one.
    """
    table_reason = TABLE_REASONS.get(throttle_error, "TableWriteProvisionedThroughputExceeded")
    named = dict.fromkeys(
        (KEY_RANGE_REASON if limit in KEY_RANGE_LIMITS else table_reason, table)
        for limit, table in sorted(refusals)
    )
    return [{"reason": reason, "resource": TABLE_ARN + table} for reason, table in named]


def drop(request: web.BaseRequest) -> web.Response:
    """Close without answering; aiohttp then quietly discards the returned response."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


def check(cfg: FaultConfig) -> None:
    """Refuse a config the proxy would only trip over mid-request."""
    if cfg.outage_kind not in OUTAGE_KINDS:
        raise ValueError(f"outage_kind {cfg.outage_kind!r}: use one of {sorted(OUTAGE_KINDS)}")
    if not 0.0 <= cfg.refuse_fraction <= 1.0:
        raise ValueError(f"refuse_fraction {cfg.refuse_fraction}: not within [0, 1]")


def table_rate(cfg: FaultConfig, t: float) -> float | None:
    """The table's WCU/s at `t` seconds: the schedule's step begun last, else the fixed
    rate; None (unlimited) before the schedule's first step."""
    if not cfg.table_wcu_schedule:
        return cfg.table_wcu_per_s
    rate = None
    for start, wcu in sorted(cfg.table_wcu_schedule):
        if start > t:
            break
        rate = wcu
    return rate


def key_string(value: object) -> str | None:
    """The S or N string of a key attribute value; None for other types or no value."""
    if not isinstance(value, dict):
        return None
    text = value.get("S", value.get("N"))
    return text if isinstance(text, str) else None


def refused_count(rng: random.Random, fraction: float, n: int) -> int:
    """`fraction` of `n` items, rounded up with the remainder's probability (0.3 of 25 is
    7 or 8, 7.5 on average), so small batches are refused at the same mean rate."""
    exact = fraction * n
    whole = math.floor(exact)
    return min(n, whole + (rng.random() < exact - whole))


def draw(rng: random.Random, cfg: FaultConfig) -> frozenset[str]:
    """The chances (CHANCES) this request lost.  A chance of 0 draws nothing, so a seed
    gives the same outcomes for every config that leaves these modes off."""
    return frozenset(name for name in CHANCES if (p := getattr(cfg, name)) > 0 and rng.random() < p)


def unavailable(
    cfg: FaultConfig, op: str, t: float, request: web.BaseRequest, faulty: bool
) -> Injection | None:
    """An outage window (faulty ops only), or a write to a table still being created."""
    if faulty and any(start <= t < end for start, end in cfg.outages):
        if cfg.outage_kind == "reset":
            return "outages_reset", drop(request)
        if cfg.outage_kind == "html":  # a load balancer with no healthy target
            return "outages_html", web.Response(
                status=502, text=_BAD_GATEWAY_PAGE, content_type="text/html"
            )
        return "outages_503", error(
            503, DDB + "ServiceUnavailable", "The service is currently unavailable or busy."
        )
    if op in CREATING_OPS and t < cfg.creating_for_s:
        return "creating_refusals", error(
            400, DDB + "ResourceNotFoundException", "Requested resource not found"
        )
    return None


def interposed(hits: frozenset[str]) -> Injection | None:
    """An answer that never reached the table: another Region's conflicting write, or a
    gateway or corporate proxy in front of DynamoDB (no DynamoDB JSON, no CRC32)."""
    if "p_409" in hits:
        return "errors_409", error(
            409,
            DDB + "ReplicatedWriteConflictException",
            "One or more items in this request are being modified by a request in another Region.",
        )
    if "p_429" in hits:
        return "errors_429", web.Response(
            status=429, text="Too Many Requests", content_type="text/plain"
        )
    if "p_html_400" in hits:
        return "errors_html_400", web.Response(
            status=400, text=_PROXY_BLOCK_PAGE, content_type="text/html"
        )
    return None


def after_forward(
    cfg: FaultConfig,
    op: str,
    t: float,
    hits: frozenset[str],
    answer: tuple[int, CIMultiDict[str], bytes],
) -> Injection | None:
    """Upstream's 200, changed: a table still CREATING, a cut body, or a corrupt CRC32
    header.  The request was forwarded, so its writes happened all the same."""
    status, headers, data = answer
    if status != 200:
        return None
    if op == "DescribeTable" and t < cfg.creating_for_s:
        payload: Json = json.loads(data)
        payload["Table"]["TableStatus"] = "CREATING"
        return "creating_describes", json_response(200, payload, headers)
    if "p_bad_json_200" in hits:
        # Any strict prefix of a JSON object is invalid.  Its CRC32 matches the cut body so
        # a client's JSON check, not its CRC check, is what must catch it.
        cut = data[: len(data) // 2]
        headers = CIMultiDict(headers)
        headers["x-amz-crc32"] = str(zlib.crc32(cut) & 0xFFFFFFFF)
        return "bad_json_200", web.Response(status=200, body=cut, headers=headers)
    if "p_bad_crc" in hits:
        headers = CIMultiDict(headers)
        headers["x-amz-crc32"] = "abc"
        return "bad_crc", web.Response(status=200, body=data, headers=headers)
    return None
