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
from claude_proxy.streaming.generation import EventFilter, apply_filters, settle
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
    await job.split()
    final = job.final_call(await job.prepare())
    message = await services.calls.message(final)
    job.add_usage(message.get("usage"))
    message["usage"] = job.usage
    message["document"] = job.summary()
    run.call.usage = job.usage
    message = run.on_message_object(message)
    return web.Response(body=orjson.dumps(message), content_type="application/json")


async def _answer_stream(
    request: web.Request, run: Run, document: DocumentRequest
) -> web.StreamResponse:
    services = request.app[SERVICES]
    job = DocumentJob(services.calls, run.call, document, services.settings.documents, _quiet)
    await job.split()  # a refusal before the stream starts is a plain HTTP error
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

    job.progress = progress
    filters = run.event_filters()
    try:
        body = await job.prepare()
        opened = await services.calls.open_stream(job.final_call({**body, "stream": True}))
        if isinstance(opened, UpstreamReply):
            await _fail(response, run, opened.error())
            return response
        await progress({"stage": "done", **job.summary(), "usage": job.usage})
        try:
            async for events in opened.events():
                events = apply_filters(filters, events)
                if events and events[-1].name == "message_stop":
                    await settle(filters)
                for event in events:
                    if event.name == "error":
                        run.call.answer_error = str(event.json().get("error", {}).get("type"))
                    await response.write(event.raw)
        finally:
            await opened.aclose()
    except GatewayError as exc:
        await _fail(response, run, (exc.error_type, exc.message), filters)
    except (ConnectionError, OSError):
        # The client went away (a progress or event write failed): the map calls were
        # cancelled with it; nothing more to send.
        run.call.answer_error = "client_disconnect"
        run.call.usage = job.usage
        return response
    except Exception:
        _log.exception("document %s failed", run.call.request_id)
        await _fail(response, run, ("api_error", "Internal gateway error."), filters)
    finally:
        run.call.usage = job.usage
    await response.write_eof()
    return response


async def _fail(
    response: web.StreamResponse,
    run: Run,
    error: tuple[str, str],
    filters: list[EventFilter] | None = None,
) -> None:
    """End the stream with an error event (after any text a filter still holds)."""
    run.call.answer_error = error[0]
    for stage in filters or ():
        for event in stage.flush():
            await response.write(event.raw)
    await response.write(sse_error_event(*error))


async def _quiet(event: dict[str, Any]) -> None:
    """A JSON answer reports no progress."""
