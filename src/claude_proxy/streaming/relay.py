"""Relay an upstream response to the client: JSON whole, SSE event by event.

SSE bytes are written to the client as soon as a complete event has arrived,
never buffered whole. Only complete events are forwarded so that, if the
upstream breaks mid-event, the client can be told with a well-formed ``error``
event instead of a torn one. A stream that ends without ``message_stop`` is a
truncated answer, and the client is told so rather than left to think it ended.
"""

from __future__ import annotations

from collections.abc import Awaitable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from claude_proxy.errors import GatewayError, error_body
from claude_proxy.upstream.client import translate_client_error

__all__ = ["ClientDisconnected", "relay_json", "relay_sse", "sse_error_event"]

_EVENT_END = b"\n\n"
_EVENT_END_CRLF = b"\r\n\r\n"


class ClientDisconnected(Exception):
    """The client went away while we were writing to it."""


def sse_error_event(error_type: str, message: str) -> bytes:
    return b"event: error\ndata: " + error_body(error_type, message) + _EVENT_END


async def relay_json(upstream: aiohttp.ClientResponse, headers: CIMultiDict[str]) -> web.Response:
    body = await upstream.read()
    return web.Response(status=upstream.status, body=body, headers=headers)


async def relay_sse(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    upstream_name: str,
) -> web.StreamResponse:
    """Forward events as they arrive; end with an honest ``error`` if the upstream breaks."""
    headers["cache-control"] = "no-cache"
    # Ask reverse proxies in front of us (nginx) not to buffer the stream either.
    headers["x-accel-buffering"] = "no"
    response = web.StreamResponse(status=upstream.status, headers=headers)
    await _write(response.prepare(request))

    pending = b""
    last_event = b""
    try:
        async for chunk in upstream.content.iter_any():
            pending += chunk
            cut = _complete_prefix_length(pending)
            if cut:
                events, pending = pending[:cut], pending[cut:]
                last_event = events
                await _write(response.write(events))
    except ClientDisconnected:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        failure = translate_client_error(exc, upstream_name)
        await _write(response.write(sse_error_event(failure.error_type, failure.message)))
        return response

    if not _ends_stream(last_event):
        failure = GatewayError(f"upstream {upstream_name!r} ended the stream before message_stop")
        await _write(response.write(sse_error_event(failure.error_type, failure.message)))
        return response
    await _write(response.write_eof())
    return response


def _complete_prefix_length(buffer: bytes) -> int:
    """Length of the prefix of ``buffer`` made of complete SSE events."""
    lf = buffer.rfind(_EVENT_END)
    crlf = buffer.rfind(_EVENT_END_CRLF)
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _ends_stream(events: bytes) -> bool:
    """Whether the last event forwarded was ``message_stop`` or ``error``."""
    tail = events[events.rfind(b"event:") :]
    return (
        b"message_stop" in tail
        or tail.startswith(b"event: error")
        or tail.startswith(b"event:error")
    )


async def _write(operation: Awaitable[object]) -> None:
    try:
        await operation
    except ConnectionResetError as exc:
        raise ClientDisconnected() from exc
