"""The ``body`` stage: read and parse the request body, once.

HTTP calls carry a reader (the ingress checks size and content type as it reads);
calls that arrive with their body (WebSocket requests, sub-calls) pass through.
"""

from __future__ import annotations

from claude_proxy.pipeline.call import Call, Route

__all__ = ["ReadBody"]


class ReadBody:
    name = "body"
    routes = frozenset({Route.MESSAGES, Route.COUNT_TOKENS, Route.DOCUMENTS})

    async def on_request(self, call: Call) -> None:
        if not call.has_body and call.read_body is not None:
            call.load_body(await call.read_body())
