"""Raw sockets for the connection tests: any source address on loopback, any bytes, exact timing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL

from claude_proxy.server import RunningServer
from tests.helpers import API_HEADERS, message_body

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.headers["content-type"].startswith("application/json")
        payload: dict[str, Any] = json.loads(self.body)
        assert payload["type"] == "error"
        assert payload["request_id"] == self.headers["request-id"]
        assert self.headers["request-id"].startswith("req_")
        error: dict[str, Any] = payload["error"]
        return error


async def connect(server: RunningServer | str, source: str = "127.0.0.1") -> Stream:
    """A connection to a server (or its URL) from ``source``: on Linux every 127.x.y.z
    is this machine, so each is a client address of its own."""
    url = URL(server if isinstance(server, str) else server.url)
    return await asyncio.open_connection(url.host, url.port, local_addr=(source, 0))


def head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: gateway",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def message_bytes(size: int = 0) -> bytes:
    """A valid Messages request body, padded with spaces to ``size`` bytes."""
    body = orjson.dumps(message_body())
    return body + b" " * max(0, size - len(body))


def post_head(length: int, **extra: str) -> bytes:
    return head("POST", "/v1/messages", {**API_HEADERS, "Content-Length": str(length), **extra})


async def read_answer(reader: asyncio.StreamReader, within: float = 5.0) -> Answer:
    """One HTTP/1.1 answer with a Content-Length (the gateway's error answers have one)."""
    async with asyncio.timeout(within):
        status_line = await reader.readuntil(b"\r\n")
        while status_line.startswith(b"HTTP/1.1 100 "):
            await reader.readuntil(b"\r\n\r\n")
            status_line = await reader.readuntil(b"\r\n")
        raw = await reader.readuntil(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in raw.decode().split("\r\n"):
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


async def closed(reader: asyncio.StreamReader, within: float = 5.0) -> bool:
    """Whether the server closes the connection ``within`` seconds (anything it still
    sends first is read and dropped)."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


async def busy(server: RunningServer, source: str = "127.0.0.1") -> Stream:
    """A connection whose request is in progress: its handler runs (it has answered
    ``Expect: 100-continue``) and waits for a body that has not come yet."""
    reader, writer = await connect(server, source)
    writer.write(post_head(1000, Expect="100-continue"))
    async with asyncio.timeout(5):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    return reader, writer


async def close_all(streams: list[Stream]) -> None:
    for _, writer in streams:
        writer.close()
    for _, writer in streams:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
