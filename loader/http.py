"""A lean HTTP/1.1 keep-alive client for DynamoDB's one kind of request: POST with a
JSON body to one endpoint, over a small pool of connections, directly or through a
company's HTTP proxy.

aiohttp costs far more CPU per request, and more start-up per process, than this one
kind of request needs (the profile is in the commit that replaced it). This is an
asyncio Protocol that writes one pre-built header block and parses the status line, a
few headers and a Content-Length or chunked body. Through a proxy, an https endpoint
is reached by a CONNECT tunnel and TLS inside it; an http one by sending the proxy the
whole URL (as urllib3 does for botocore). Every failure is an OSError, TimeoutError or
`TransportError`, or a `ConfigError` when the proxy refuses us; the caller
(loader.client) turns them into its own.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

from loader.errors import ConfigError, TransportError

IDLE_S = 30.0  # an idle connection older than this is closed, not reused (as aiohttp)
MAX_HEAD = 64 * 1024


class _Connection(asyncio.Protocol):
    """One connection; at most one request in flight on it."""

    __slots__ = ("buffer", "closed", "expired", "idle_since", "transport", "waiter")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.expired = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # the reader sees `closed` and what the buffer holds

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def expire(self) -> None:
        """No answer in time: drop the connection; the waiting reader gets TimeoutError."""
        waiter = self.waiter
        self.expired = True
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())

    async def more(self) -> None:
        """Wait for more bytes (or the end of the connection)."""
        if self.closed:
            raise TransportError("the server closed the connection")
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def response(self) -> tuple[int, dict[bytes, bytes], bytes, bool]:
        """(status, headers with lower-case names, body, reusable) of one answer."""
        status, version, headers = await self._head()
        while 100 <= status < 200:  # 100 Continue and kin: the answer follows
            status, version, headers = await self._head()
        reusable = headers.get(b"connection", b"").lower() != b"close" and version != b"HTTP/1.0"
        if status in (204, 304):
            return status, headers, b"", reusable
        if headers.get(b"transfer-encoding", b"").lower().endswith(b"chunked"):
            return status, headers, await self._chunked(), reusable
        length = headers.get(b"content-length")
        if length is not None:
            return status, headers, await self._sized(length), reusable
        # Neither: the body runs to the end of the connection.
        while not self.closed:
            await self.more()
        body = bytes(self.buffer)
        self.buffer.clear()
        return status, headers, body, False

    async def _head(self) -> tuple[int, bytes, dict[bytes, bytes]]:
        """(status, HTTP version, headers) of the next answer's head."""
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise TransportError("response headers too long")
            if self.closed:
                raise TransportError("the server closed the connection before answering")
            await self.more()
        lines = bytes(buffer[:end]).split(b"\r\n")
        del buffer[: end + 4]
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise TransportError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
        try:
            status = int(status_line[1])
        except ValueError:
            raise TransportError(f"bad status line: {lines[0][:80]!r}") from None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        return status, status_line[0], headers

    async def _sized(self, length: bytes) -> bytes:
        size = int(length) if length.isdigit() else -1
        if size < 0:
            raise TransportError(f"bad Content-Length {length[:40]!r}")
        buffer = self.buffer
        while len(buffer) < size:
            if self.closed:
                raise TransportError("the server closed the connection mid-answer")
            await self.more()
        body = bytes(buffer[:size])
        del buffer[:size]
        return body

    async def _chunked(self) -> bytes:
        buffer = self.buffer
        parts: list[bytes] = []
        while True:
            while (end := buffer.find(b"\r\n")) < 0:
                if self.closed:
                    raise TransportError("the server closed the connection mid-answer")
                await self.more()
            try:
                size = int(bytes(buffer[:end]).split(b";", 1)[0], 16)
            except ValueError:
                raise TransportError("bad chunk size") from None
            del buffer[: end + 2]
            if size == 0:
                # Trailers (if any) end with an empty line.
                while True:
                    while (end := buffer.find(b"\r\n")) < 0:
                        if self.closed:
                            raise TransportError("the server closed the connection mid-answer")
                        await self.more()
                    line = bytes(buffer[:end])
                    del buffer[: end + 2]
                    if not line:
                        return b"".join(parts)
            while len(buffer) < size + 2:
                if self.closed:
                    raise TransportError("the server closed the connection mid-answer")
                await self.more()
            parts.append(bytes(buffer[:size]))
            del buffer[: size + 2]


class HttpPool:
    """Up to `limit` keep-alive connections to the host of `endpoint`; `post` waits for a
    free one when all are busy.

    `ca_bundle`: a file of the certificate authorities to trust instead of the system's
    (botocore's `AWS_CA_BUNDLE` / `ca_bundle`). `proxy`: an `http://[user:password@]host:port`
    URL to go through.

    Raises:
        ValueError: the endpoint or the proxy is no URL of ours, or the bundle is unreadable;
            the message is one sentence for the user.
    """

    def __init__(
        self, endpoint: str, limit: int, *, ca_bundle: str | None = None, proxy: str | None = None
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Bad endpoint URL: not an http(s) URL: {endpoint!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            try:
                self.ssl = ssl.create_default_context(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"The CA bundle {ca_bundle} cannot be read ({exc.strerror or exc})."
                ) from None
        self.path = (parts.path.rstrip("/") or "") + "/"
        self._netloc = parts.netloc
        self._proxy: tuple[str, int] | None = None
        self._proxy_auth = ""  # a Proxy-Authorization header line, or nothing
        if proxy:
            self._proxy, self._proxy_auth = _proxy_of(proxy)
        target = self.path
        if proxy and self.ssl is None:
            target = f"http://{self._netloc}{self.path}"  # the proxy forwards it
        self._request_line = f"POST {target} HTTP/1.1\r\nHost: {self._netloc}\r\n"
        if self.ssl is None:
            self._request_line += self._proxy_auth
        self._limit = max(1, limit)
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._all: set[_Connection] = set()

    def head(self, headers: dict[str, Any], length: int) -> bytes:
        """The request line and header block of a POST of `length` bytes."""
        lines = [self._request_line]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        lines.append(f"Content-Length: {length}\r\n\r\n")
        return "".join(lines).encode("latin-1")

    async def _connection(self, timeout_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            idle = self._idle
            while idle:
                conn = idle.pop()
                if not conn.closed and not conn.buffer and loop.time() - conn.idle_since < IDLE_S:
                    return conn
                self._discard(conn)
            if self._open < self._limit:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    self._wake()  # pass the turn on
                raise
        self._open += 1
        try:
            async with asyncio.timeout(timeout_s):
                if self._proxy is not None and self.ssl is not None:
                    conn = await self._tunnel(loop, self.ssl)
                else:
                    host, port = self._proxy or (self.host, self.port)
                    _, conn = await loop.create_connection(
                        _Connection,
                        host,
                        port,
                        ssl=self.ssl,
                        server_hostname=self.host if self.ssl else None,
                    )
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        self._all.add(conn)
        return conn

    async def _tunnel(
        self, loop: asyncio.AbstractEventLoop, context: ssl.SSLContext
    ) -> _Connection:
        """A connection through the proxy's CONNECT tunnel, TLS to the endpoint inside it."""
        assert self._proxy is not None
        _, conn = await loop.create_connection(_Connection, *self._proxy)
        try:
            assert conn.transport is not None
            authority = f"{self.host}:{self.port}"
            conn.transport.write(
                f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
                f"{self._proxy_auth}\r\n".encode("latin-1")
            )
            status, _, _ = await conn._head()
            if status in (403, 407):
                # Refused for who we are or where we go: no retry changes that.
                what = (
                    "needs a user and password in the proxy URL"
                    if status == 407
                    else ("forbids it")
                )
                raise ConfigError(
                    f"The proxy {self._proxy[0]}:{self._proxy[1]} refused a tunnel to "
                    f"{authority} (HTTP {status}: it {what})."
                )
            if status // 100 != 2:
                raise TransportError(f"the proxy refused a tunnel to {authority} (HTTP {status})")
            conn.buffer.clear()  # a 200's body, if the proxy sent one, is no TLS
            transport = await loop.start_tls(
                conn.transport, conn, context, server_hostname=self.host
            )
        except BaseException:
            conn.close()
            raise
        assert transport is not None
        conn.transport = transport
        return conn

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _release(self, conn: _Connection) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.append(conn)
        self._wake()

    async def post(
        self, head: bytes, body: bytes, timeout_s: float
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send `head` (the request line and headers, ending in an empty line) and `body`;
        return the status, headers (lower-case names) and body of the answer.

        Raises:
            OSError, TransportError: no connection, or it broke or answered nonsense.
            TimeoutError: no connection, or no whole answer, within `timeout_s`.
        """
        conn = await self._connection(timeout_s)
        # A timer on the connection, not asyncio.timeout(), whose context manager is a
        # large share of a request's own CPU (benchmarks/client_cost.py). Waiting for a
        # free connection is not timed: the pool has a connection for every worker.
        timer = asyncio.get_running_loop().call_later(timeout_s, conn.expire)
        done = False
        try:
            transport = conn.transport
            assert transport is not None
            transport.writelines((head, body))
            status, headers, data, reusable = await conn.response()
            done = reusable
        except TransportError:
            if conn.expired:  # it expired while part of the answer was in
                raise TimeoutError() from None
            raise
        finally:
            timer.cancel()
            if done and not conn.closed:
                self._release(conn)
            else:
                self._discard(conn)
        return status, headers, data

    async def close(self) -> None:
        for conn in list(self._all):
            self._discard(conn)
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close


def _proxy_of(proxy: str) -> tuple[tuple[str, int], str]:
    """The proxy's (host, port), and its Proxy-Authorization header line (or nothing)."""
    via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if via.scheme != "http" or not via.hostname:
        raise ValueError(
            f"The proxy {proxy!r} is not an http://host:port URL (a proxy reached "
            "over TLS is not supported)."
        )
    auth = ""
    if via.username is not None:
        user = f"{unquote(via.username)}:{unquote(via.password or '')}"
        auth = f"Proxy-Authorization: Basic {base64.b64encode(user.encode()).decode()}\r\n"
    return (via.hostname, via.port or 80), auth
