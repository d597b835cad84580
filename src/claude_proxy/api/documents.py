"""``POST /v1/documents``: an instruction over a document of any length, by map-reduce.

JSON: the final answer as a Message whose ``usage`` sums every call the document took,
plus ``document: {chunks, missing_chunks, calls}``. Streamed: ``document_progress``
events (``split``, ``chunk_started``, ``chunk_done``, ``reduce_started``, ``done``),
then the final answer as a normal Messages stream. A failure after the stream began is
an ``error`` event: the stream never just stops.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from claude_proxy.api.serve import reply_headers, serve
from claude_proxy.documents.mapreduce import DocumentJob, DocumentRequest
from claude_proxy.errors import GatewayError
from claude_proxy.pipeline.call import Route
from claude_proxy.pipeline.chain import Run
from claude_proxy.services import SERVICES
from claude_proxy.streaming.relay import sse_error_event
from claude_proxy.streaming.sse import encode_event
from claude_proxy.upstream.forwarder import UpstreamReply

__all__ = ["create_document"]

_log = logging.getLogger("claude_proxy.documents")


async def create_document(request: web.Request) -> web.StreamResponse:
    return await serve(request, Route.DOCUMENTS, _answer)


async def _answer(request: web.Request, run: Run) -> web.StreamResponse:
    document = DocumentRequest.parse(run.call.body)
    if document.stream:
        return await _answer_stream(request, run, document)
    services = request.app[SERVICES]
    job = DocumentJob(services.calls, run.call, document, services.settings.documents, _quiet)
    final = job.final_call(await job.prepare())
    message = await services.calls.message(final)
    job.add_usage(message.get("usage"))
    message["usage"] = job.usage
    message["document"] = job.summary()
    run.call.usage = job.usage
    body = run.on_message(orjson.dumps(message))
    return web.Response(body=body, content_type="application/json")


async def _answer_stream(
    request: web.Request, run: Run, document: DocumentRequest
) -> web.StreamResponse:
    services = request.app[SERVICES]
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
    )
    response.headers["x-accel-buffering"] = "no"
    reply_headers(response.headers, run.call)
    await response.prepare(request)

    async def progress(event: dict[str, Any]) -> None:
        await response.write(
            encode_event("document_progress", {"type": "document_progress", **event})
        )

    job = DocumentJob(services.calls, run.call, document, services.settings.documents, progress)
    try:
        body = await job.prepare()
        opened = await services.calls.open_stream(job.final_call({**body, "stream": True}))
        if isinstance(opened, UpstreamReply):
            await response.write(_reply_error(opened))
            return response
        await progress({"stage": "done", **job.summary(), "usage": job.usage})
        filters = run.event_filters()
        try:
            async for events in opened.events():
                for stage in filters:
                    events = stage.on_events(events)
                for event in events:
                    await response.write(event.raw)
        finally:
            await opened.aclose()
    except GatewayError as exc:
        await response.write(sse_error_event(exc.error_type, exc.message))
    except (ConnectionError, OSError):
        raise  # the client went away
    except Exception:
        _log.exception("document %s failed", run.call.request_id)
        await response.write(sse_error_event("api_error", "Internal gateway error."))
    run.call.usage = job.usage
    await response.write_eof()
    return response


async def _quiet(event: dict[str, Any]) -> None:
    """A JSON answer reports no progress."""


def _reply_error(reply: UpstreamReply) -> bytes:
    try:
        error = orjson.loads(reply.body)["error"]
        return sse_error_event(str(error["type"]), str(error["message"]))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return sse_error_event("api_error", f"The upstream answered {reply.status}.")
