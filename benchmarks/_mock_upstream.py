"""A mock Messages API for the scaling benchmark: canned answers at almost no CPU cost.

The simulator is faithful, and costs CPU for it; when the gateway, its workers, Redis
and the load generator share two cores, every cycle the upstream spends is one the
gateway cannot. This server answers ``POST /v1/messages`` on raw asyncio protocols:

- JSON (no ``"stream": true`` in the body): one fixed message;
- streams: ``x-mock-events`` events in all (default 26: message_start, a text block
  of N-5 deltas, message_delta, message_stop), written back to back in one write or,
  with
  ``x-mock-pace-ms``, one delta every that many milliseconds. Each delta's text is the
  ``time.monotonic_ns()`` at which it was written (then a space), so a client on the
  same host can tell how long each event took to reach it.

    python benchmarks/_mock_upstream.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
import uvloop

_JSON_BODY = orjson.dumps(
    {
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 14, "output_tokens": 10},
    }
)
_COMMON = b"request-id: req_mock\r\nanthropic-organization-id: mock\r\n"
_JSON_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + _COMMON
    + b"content-length: %d\r\n\r\n" % len(_JSON_BODY)
)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    + _COMMON
    + b"transfer-encoding: chunked\r\n\r\n"
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


def _event(name: str, data: dict[str, object]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_START = _event(
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_mock",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 14, "output_tokens": 1},
        },
    },
) + _event(
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%d "}}\n\n'  # noqa: E501


def _end(deltas: int) -> bytes:
    return (
        _event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": deltas},
            },
        )
        + _event("message_stop", {"type": "message_stop"})
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class MockUpstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            total = end + 4 + int(headers.get("content-length", "0"))
            if len(self.buffer) < total:
                return
            body, self.buffer = self.buffer[end + 4 : total], self.buffer[total:]
            self.respond(lines[0], headers, body)

    def respond(self, request_line: str, headers: dict[str, str], body: bytes) -> None:
        if self.transport is None:
            return
        if not request_line.startswith("POST /v1/messages"):
            self.transport.write(_NOT_FOUND)
            return
        if not orjson.loads(body).get("stream"):
            self.transport.write(_JSON_HEAD + _JSON_BODY)
            return
        deltas = max(1, int(headers.get("x-mock-events", "26")) - 5)
        pace = float(headers.get("x-mock-pace-ms", "0")) / 1000.0
        if pace <= 0:
            # One write: a mock that spent a syscall per event would compete with the
            # gateway for the cores (the machine has two), which is not what is measured.
            burst = b"".join(_DELTA % time.monotonic_ns() for _ in range(deltas))
            self.transport.write(_SSE_HEAD + _chunk(_START + burst + _end(deltas)) + b"0\r\n\r\n")
            return
        self.transport.write(_SSE_HEAD + _chunk(_START + _DELTA % time.monotonic_ns()))
        self._paced(self.transport, deltas - 1, deltas, pace)

    def _paced(self, transport: asyncio.Transport, left: int, deltas: int, pace: float) -> None:
        loop = asyncio.get_running_loop()

        def send(left: int) -> None:
            if transport.is_closing():
                return
            if left == 0:
                transport.write(_chunk(_end(deltas)) + b"0\r\n\r\n")
                return
            transport.write(_chunk(_DELTA % time.monotonic_ns()))
            loop.call_later(pace, send, left - 1)

        loop.call_later(pace, send, left)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockUpstream, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
