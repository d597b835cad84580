"""An upstream that answers each request with the next reply of a script, and keeps the bodies.

A reply is an SSE body (sent whole, then the response ends: an end without
``message_stop`` is a clean EOF) or a ``(status, JSON)`` pair.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson
from aiohttp import web

from claude_proxy.server import RunningServer, start_server


def sse(name: str, payload: dict[str, Any]) -> bytes:
    return (
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **payload}) + b"\n\n"
    )


def text_part(*texts: str, stop: str | None = "end_turn", output_tokens: int = 0) -> bytes:
    """A message with one text block of these deltas; ``stop`` None: it ends after them."""
    message = {
        "id": "msg_01scripted",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 1},
    }
    body = sse("message_start", {"message": message})
    body += sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    for text in texts:
        delta = {"type": "text_delta", "text": text}
        body += sse("content_block_delta", {"index": 0, "delta": delta})
    if stop is not None:
        body += sse("content_block_stop", {"index": 0})
        body += sse(
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        body += sse("message_stop", {})
    return body


class ScriptedUpstream:
    def __init__(self, *replies: bytes | tuple[int, dict[str, Any]]) -> None:
        self.replies: deque[bytes | tuple[int, dict[str, Any]]] = deque(replies)
        self.bodies: list[dict[str, Any]] = []
        self.url = ""  # once started
        self._server: RunningServer | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._handle)
        self._server = await start_server(app, "127.0.0.1", 0, shutdown_timeout=0.1)
        self.url = self._server.url
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(orjson.loads(await request.read()))
        reply = self.replies.popleft()
        if isinstance(reply, tuple):
            status, payload = reply
            return web.Response(
                status=status, body=orjson.dumps(payload), content_type="application/json"
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(reply)
        await response.write_eof()
        return response
