"""A loopback TCP proxy that cuts connections mid-stream: a network blip on demand.

Each new connection takes the next entry of ``plan``: ``None`` forwards it whole,
``k`` forwards the response's headers and its body up to and including the k-th
SSE event (a blank line ends an event; HTTP chunk framing never contains one), then
closes both sides, so the client sees a broken chunked body, as after a real network
failure (``0``: the headers, then nothing). ``REFUSE`` closes the connection at once,
before any response: an upstream that cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from urllib.parse import urlsplit

_EVENT_END = b"\n\n"
_HEADERS_END = b"\r\n\r\n"
REFUSE = -1


class NetCut:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        assert parts.hostname is not None and parts.port is not None
        self._target = (parts.hostname, parts.port)
        self.plan: deque[int | None] = deque()
        self.connections = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Close every connection (their copies then end on their own) and the listener."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        cut_after = self.plan.popleft() if self.plan else None
        if cut_after == REFUSE:
            self.cuts += 1
            writer.transport.abort()
            self._tasks.discard(task)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        upward = asyncio.create_task(_copy(reader, up_writer))
        try:
            if await _copy_until(up_reader, writer, cut_after):
                self.cuts += 1
        finally:
            upward.cancel()
            for side in (writer, up_writer):
                side.close()
                self._writers.discard(side)
            self._tasks.discard(task)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


async def _copy_until(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut_after: int | None
) -> bool:
    """Copy the response; True if it was cut after ``cut_after`` events."""
    events = 0
    head: bytes | None = b""  # the response so far, until its headers are complete
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            if cut_after is None:
                writer.write(data)
                await writer.drain()
                continue
            position = 0
            if head is not None:
                head += data
                end = head.find(_HEADERS_END)
                if end < 0:
                    continue
                data, position, head = head, end + len(_HEADERS_END), None
            while events < cut_after:
                found = data.find(_EVENT_END, position)
                if found < 0:
                    break
                events += 1
                position = found + len(_EVENT_END)
            if events >= cut_after:
                writer.write(data[:position])
                await writer.drain()
                return True
            writer.write(data)
            await writer.drain()
    return False
