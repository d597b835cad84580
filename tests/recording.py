"""An upstream that records what it receives and answers one fixed message (JSON or SSE)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from claude_proxy.server import RunningServer, start_server

MESSAGE = {
    "id": "msg_01recorded",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "recorded"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}


@dataclass
class Received:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class RecordingUpstream:
    received: list[Received] = field(default_factory=list)
    server: RunningServer | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = await start_server(app, "127.0.0.1", 0, shutdown_timeout=0.1)
        return self.server.url

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.method, request.path_qs, request.headers, body))
        return web.Response(
            body=orjson.dumps(MESSAGE),
            content_type="application/json",
            headers={"request-id": "req_x"},
        )
