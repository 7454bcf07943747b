"""A company network in a box, for the tests: a TLS front with its own certificate
authority before a plain HTTP server (DynamoDB Local), and an HTTP proxy that tunnels
CONNECT and forwards absolute-URL requests, recording what it was asked.

Threads and blocking sockets, on 127.0.0.1 only: each connection is two copies, one
each way, until either side closes.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _join(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until one side closes; then close both."""
    other = threading.Thread(target=_pipe, args=(b, a), daemon=True)
    other.start()
    _pipe(a, b)
    other.join(timeout=5)
    a.close()
    b.close()


@contextmanager
def _serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listening socket on a free loopback port, a thread per connection; its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def accept() -> None:
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopped.set()
        listener.close()
        thread.join(timeout=5)


@contextmanager
def tls_front(upstream_port: int, context: ssl.SSLContext) -> Iterator[int]:
    """TLS on a free port, in front of plain HTTP on `upstream_port`; yields the port."""

    def handle(raw: socket.socket) -> None:
        try:
            conn = context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()  # a client that does not trust us hangs up in the handshake
            return
        _join(conn, socket.create_connection(("127.0.0.1", upstream_port)))

    with _serving(handle) as port:
        yield port


@dataclass
class HttpProxy:
    """What an HTTP proxy was asked: one (method, target, Proxy-Authorization) per
    connection. With `credentials` ("user:password") it answers 407 to anything else."""

    credentials: str | None = None
    asked: list[tuple[str, str, str | None]] = field(default_factory=list)

    def handle(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(65536)
            if not data:
                conn.close()
                return
            head += data
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        auth = headers.get("Proxy-Authorization")
        self.asked.append((method, target, auth))
        if self.credentials is not None:
            wanted = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if auth != wanted:
                conn.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="company"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                conn.close()
                return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _join(conn, upstream)
            return
        # An absolute URL: the server takes it as it is (HTTP/1.1 servers must).
        url = urlsplit(target)
        upstream = socket.create_connection((url.hostname or "", url.port or 80))
        upstream.sendall(head)
        _join(conn, upstream)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """The proxy on a free loopback port; yields its URL."""
        with _serving(self.handle) as port:
            yield f"http://127.0.0.1:{port}"
