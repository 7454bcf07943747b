"""A zero-work DynamoDB endpoint on loopback: every BatchWriteItem succeeds with an empty
`UnprocessedItems`, so a client's speed against it is its own cost alone.

    python -m benchmarks.null_endpoint [PORT]      # serves until killed

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) in a raw asyncio
protocol, so the server stays far cheaper than any client measured against it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import zlib

TABLE = {
    "Table": {
        "TableName": "bench",
        "TableStatus": "ACTIVE",
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
    }
}


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-amz-crc32: {zlib.crc32(body) & 0xFFFFFFFF}\r\n"
        "x-amzn-RequestId: null\r\n"
        "\r\n"
    )
    return head.encode() + body


ANSWERS = {  # by the lower-cased X-Amz-Target
    b"dynamodb_20120810.batchwriteitem": _response(b'{"UnprocessedItems":{}}'),
    b"dynamodb_20120810.putitem": _response(b"{}"),
    b"dynamodb_20120810.describetable": _response(json.dumps(TABLE).encode()),
    b"dynamodb_20120810.batchgetitem": _response(b'{"Responses":{},"UnprocessedKeys":{}}'),
}
UNKNOWN = _response(b"{}")


class NullProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()  # appended in place: a request arrives in several reads
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            length = 0
            start = head.find(b"content-length:")
            if start >= 0:
                length = int(head[start + 15 : head.find(b"\r\n", start) % (len(head) + 1)])
            if len(buffer) < end + 4 + length:
                return
            target = b""
            start = head.find(b"x-amz-target:")
            if start >= 0:
                stop = head.find(b"\r\n", start)
                target = head[start + 13 : stop if stop > 0 else end].strip()
            del buffer[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(ANSWERS.get(target, UNKNOWN))


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NullProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop  # the cheapest event loop: the endpoint's CPU is not the client's

    uvloop.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 8765))
