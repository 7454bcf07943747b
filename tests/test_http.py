"""The keep-alive HTTP pool: a connection that answers too late is dropped, not reused,
and the pool goes on with fresh ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from loader.http import HttpPool, _Connection

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@asynccontextmanager
async def _server(answer_after: list[float]) -> AsyncIterator[str]:
    """Answers the n-th request after answer_after[n] seconds (never, past the list's end)."""
    handlers: list[asyncio.Task[None]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await asyncio.sleep(answer_after.pop(0) if answer_after else 3600.0)
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up
        finally:
            writer.close()

    def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.create_task(answer(reader, writer)))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def test_an_answer_later_than_the_timeout_drops_the_connection() -> None:
    async with _server([0.0, 5.0, 0.0]) as url:
        pool = HttpPool(url, limit=1)
        head = pool.head({}, 2)
        try:
            assert (await pool.post(head, b"{}", 1.0))[0] == 200
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.post(head, b"{}", 0.3)
            assert time.monotonic() - started < 2.0
            # The late connection is gone (its answer must not be read as the next
            # one's): the next request goes out on a new connection, gets its own answer.
            answer = await pool.post(head, b"{}", 1.0)
            assert answer == (200, {b"content-length": b"2"}, b"{}")
        finally:
            await pool.close()


class _Transport:
    """Takes what is written; never answers by itself."""

    def writelines(self, data: object) -> None:
        pass

    def close(self) -> None:
        pass


async def test_expiry_in_the_turn_part_of_the_answer_came_in_is_still_a_timeout() -> None:
    pool = HttpPool("http://127.0.0.1:9", limit=1)
    conn = _Connection()
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    conn.idle_since = asyncio.get_running_loop().time()
    pool._idle.append(conn)
    pool._all.add(conn)
    pool._open = 1
    post = asyncio.ensure_future(pool.post(pool.head({}, 2), b"{}", 60.0))
    await asyncio.sleep(0)  # the request is out; the reader waits for the answer
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")  # 2 of 10
    conn.expire()  # the timer, in the same turn: the reader's wait is already over
    with pytest.raises(TimeoutError):
        await post
    assert pool._open == 0  # dropped, not reused


@pytest.mark.parametrize(
    ("endpoint", "proxy", "line"),
    [
        ("http://db:8000", None, "POST / HTTP/1.1\r\nHost: db:8000\r\n"),
        ("https://gw.example/ddb/", None, "POST /ddb/ HTTP/1.1\r\nHost: gw.example\r\n"),
        # Through a proxy, an http endpoint's requests name the whole URL, with the
        # proxy's password; an https one's go inside a tunnel as they would directly.
        (
            "http://db:8000/ddb",
            "http://u:p@proxy:3128",
            "POST http://db:8000/ddb/ HTTP/1.1\r\nHost: db:8000\r\n"
            "Proxy-Authorization: Basic dTpw\r\n",
        ),
        (
            "https://gw.example/ddb",
            "http://u:p@proxy:3128",
            "POST /ddb/ HTTP/1.1\r\nHost: gw.example\r\n",
        ),
    ],
)
def test_the_request_line_names_the_endpoint_s_path(
    endpoint: str, proxy: str | None, line: str
) -> None:
    head = HttpPool(endpoint, 1, proxy=proxy).head({"X-Amz-Target": "T"}, 2).decode()
    assert head == f"{line}X-Amz-Target: T\r\nContent-Length: 2\r\n\r\n"


@pytest.mark.parametrize(
    ("proxy", "says"),
    [("https://proxy:3128", "not an http://host:port URL"), ("socks5://p:1080", "not an http")],
)
def test_a_proxy_we_cannot_speak_to_is_one_sentence(proxy: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        HttpPool("https://db", 1, proxy=proxy)


def test_an_unreadable_ca_bundle_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"The CA bundle .* cannot be read"):
        HttpPool("https://db", 1, ca_bundle=str(tmp_path / "missing.pem"))
