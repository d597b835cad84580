"""``GET /v1/streams/{stream_id}``: resume a stream after a dropped connection.

The client sends the last event id it saw as ``Last-Event-ID`` (or the
``last_event_id`` query parameter) and the same credentials as the request that
started the stream; it gets exactly the events after that id, then the rest
live while the stream is still being generated. Unknown or expired streams are
404, another tenant's are 403.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from claude_proxy.api.serve import serve
from claude_proxy.errors import InvalidRequest, NotFound
from claude_proxy.pipeline.call import Route
from claude_proxy.pipeline.chain import Run
from claude_proxy.replay import (
    STREAM_ID_HEADER,
    InvalidEventId,
    StreamLost,
    StreamNotFound,
    parse_last_event_id,
    require_owner,
    with_event_id,
)
from claude_proxy.replay.ids import is_stream_id
from claude_proxy.services import SERVICES
from claude_proxy.state import StateUnavailable
from claude_proxy.streaming.relay import sse_error_event
from claude_proxy.streaming.streams import stream_owner

__all__ = ["resume_stream"]

_SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


async def resume_stream(request: web.Request) -> web.StreamResponse:
    return await serve(request, Route.RESUME, _replay)


async def _replay(request: web.Request, run: Run) -> web.StreamResponse:
    services = request.app[SERVICES]
    call = run.call
    tenant = call.tenant
    assert tenant is not None
    stream_id = request.match_info["stream_id"]
    replay = services.streams.replay
    if replay is None or not is_stream_id(stream_id):
        raise (
            StreamNotFound(stream_id)
            if replay is not None
            else NotFound(
                "Resumable streams are disabled on this gateway (streams.resumable: false)."
            )
        )
    last_seen = request.headers.get("last-event-id") or request.query.get("last_event_id")
    try:
        after = parse_last_event_id(last_seen, stream_id)
    except InvalidEventId as exc:
        raise InvalidRequest(f"last-event-id: {exc}") from None
    owner = stream_owner(tenant, request.headers, services.tenants.is_open)
    await require_owner(replay, stream_id, owner)
    # A live stream's log may lag its client by a flush: only a finished one has an end.
    final = await replay.final_seq(stream_id)
    if final is not None and after > final:
        raise InvalidRequest(
            f"last-event-id: {stream_id}:{after} is past the end of the stream "
            f"(its last event is {stream_id}:{final})."
        )
    services.metrics.resume()
    response = web.StreamResponse(
        status=200,
        headers={**_SSE_HEADERS, "request-id": call.request_id, STREAM_ID_HEADER: stream_id},
    )
    await response.prepare(request)
    try:
        async with contextlib.aclosing(replay.read(stream_id, after)) as events:
            async for seq, data in events:
                await response.write(with_event_id(stream_id, seq, data))
    except (StreamLost, StreamNotFound, StateUnavailable) as exc:
        # The headers are gone: say it the way a stream says it.
        await response.write(sse_error_event(exc.error_type, exc.message))
    await response.write_eof()
    return response
