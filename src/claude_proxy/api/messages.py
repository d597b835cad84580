"""The Messages API routes: /v1/messages (JSON and SSE) and count_tokens.

Each handler is one line: its route through the pipeline (``serve``), then its answer
from the upstream-call service. The stages (record, loopback, authenticate, body,
model access, ...) live in ``pipeline.stages``; features add stages, not branches here.
"""

from __future__ import annotations

from aiohttp import web

from claude_proxy.api.serve import reply_headers, serve
from claude_proxy.api.sinks import SseSink
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.pipeline.chain import Run
from claude_proxy.replay import STREAM_ID_HEADER
from claude_proxy.services import SERVICES, Services
from claude_proxy.streaming.streams import stream_owner
from claude_proxy.upstream.forwarder import UpstreamReply

__all__ = ["count_tokens", "create_message"]


async def create_message(request: web.Request) -> web.StreamResponse:
    return await serve(request, Route.MESSAGES, _answer_message)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """Token counting is free upstream: authenticated, but not admitted against limits."""
    return await serve(request, Route.COUNT_TOKENS, _answer_whole)


async def _answer_message(request: web.Request, run: Run) -> web.StreamResponse:
    if run.call.stream:
        return await _answer_stream(request, run)
    return await _answer_whole(request, run)


async def _answer_whole(request: web.Request, run: Run) -> web.StreamResponse:
    reply = await request.app[SERVICES].calls.send(run.call)
    body = reply.body
    if reply.status == 200 and run.call.route is Route.MESSAGES:
        body = run.on_message(body)
        await run.settle()
    return _reply_response(reply, body)


def _reply_response(reply: UpstreamReply, body: bytes) -> web.Response:
    return web.Response(status=reply.status, body=body, headers=reply.headers)


async def _answer_stream(request: web.Request, run: Run) -> web.StreamResponse:
    """Open the upstream stream, then let a generation relay it; the answer goes with it."""
    services = request.app[SERVICES]
    call = run.call
    opened = await services.calls.open_stream(call)
    if isinstance(opened, UpstreamReply):
        return _reply_response(opened, opened.body)
    # Begun now, when the client is about to learn its id, and not waited for: on Redis
    # its keys go with its first events, and a replica asked for it sooner waits for them
    # while its id is young (see ReplayLog.begin).
    stream_id = _new_stream(services, call)
    headers = opened.headers
    headers["cache-control"] = "no-cache"
    # Ask reverse proxies in front of us (nginx) not to buffer the stream either.
    headers["x-accel-buffering"] = "no"
    if stream_id is not None:
        headers[STREAM_ID_HEADER] = stream_id
    reply_headers(headers, call)
    response = web.StreamResponse(status=200, headers=headers)
    generation = call.generation = services.streams.generation(
        opened, SseSink(response, stream_id), stream_id=stream_id, filters=run.event_filters()
    )
    try:
        await response.prepare(request)
    except BaseException:
        await generation.abandon()
        raise
    await services.streams.serve(generation)
    return response


def _new_stream(services: Services, call: Call) -> str | None:
    """The resumable stream's id (None: streams are not kept, or the replay log is down)."""
    if services.streams.replay is None:
        return None
    assert call.tenant is not None
    owner = stream_owner(call.tenant, call.headers, services.tenants.is_open)
    return services.streams.new_stream(owner)
