"""Every other ``/v1`` route, relayed as it is: models, message batches, files, skills,
and whatever the API adds later.

The call runs the relay route's chain (record, loopback, authenticate: a tenant is
known before anything is sent), then goes upstream with its method, path, query,
headers and body, the credential swapped as for messages. Bodies are never held: a
request body streams up as it arrives (small ones, up to ``REPLAYABLE_BYTES``, are
read first so that a failed attempt can be sent again), and the answer streams down
with its own encoding and length. ``max_relay_body_bytes`` bounds what a client may
send. When the upstream breaks in the middle of a body, the client's connection is
cut, so that no client takes a truncated file for a whole one; an event stream ends
with an ``error`` event instead, as the API's own streams do.

One answer is changed on the way: a message batch's ``results_url`` is the API's own
address, which a client would call directly, past the gateway and with a key only the
gateway holds. It is rewritten to the address the client called.
"""

from __future__ import annotations

import contextlib
import logging
import re

from aiohttp import StreamReader, web
from multidict import CIMultiDict

from claude_proxy.api.ingress import too_large
from claude_proxy.api.serve import reply_headers, serve
from claude_proxy.errors import GatewayError, RequestTooLarge
from claude_proxy.pipeline.call import Route
from claude_proxy.pipeline.chain import Run
from claude_proxy.services import SERVICES
from claude_proxy.streaming.relay import sse_error_event
from claude_proxy.upstream.forwarder import OpenStream, UpstreamReply

__all__ = ["REPLAYABLE_BYTES", "relay_call"]

# Bodies up to this size are read before sending, so that an attempt that failed can be
# made again (batch creations, skill uploads are mostly this small); larger ones stream.
REPLAYABLE_BYTES = 1024 * 1024
_log = logging.getLogger("claude_proxy.api")


async def relay_call(request: web.Request) -> web.StreamResponse:
    return await serve(request, Route.RELAY, _answer_relayed)


async def _answer_relayed(request: web.Request, run: Run) -> web.StreamResponse:
    services = request.app[SERVICES]
    call = run.call
    rewrite = _names_results_url(call.path)
    if rewrite:
        # Identity encoding, so that the answer can be read and rewritten.
        headers = CIMultiDict(call.headers)
        headers.popall("accept-encoding", None)
        call.headers = headers
    limit = services.settings.max_relay_body_bytes
    body: bytes | BodyStream | None = None
    if call.has_body:  # a stage read it (a batch checked for its models): as it left it
        body = call.upstream_body
    elif request.body_exists:
        length = request.content_length
        if length is not None and length > limit:
            raise RequestTooLarge(too_large(limit))
        if length is not None and length <= REPLAYABLE_BYTES:
            body = await request.read()
        else:
            body = BodyStream(request.content, limit)
    answer = await services.calls.relay(run.call, body)
    if isinstance(answer, UpstreamReply):
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
    if rewrite and answer.response.content_type == "application/json":
        return await _with_own_results_url(request, answer)
    return await _stream_down(request, run, answer)


async def _stream_down(request: web.Request, run: Run, answer: OpenStream) -> web.StreamResponse:
    """The answer's body as it arrives; cut short if the upstream breaks."""
    upstream = answer.response
    response = web.StreamResponse(status=upstream.status, headers=answer.headers)
    reply_headers(response.headers, run.call)
    try:
        await response.prepare(request)
        async for chunk in upstream.chunks():
            await response.write(chunk)
        await response.write_eof()
    except GatewayError as exc:
        upstream.close()
        run.call.answer_error = exc.error_type
        request.app[SERVICES].forwarder.stream_broke(answer.deployment, "cut")
        _log.warning("relayed answer broke request_id=%s: %s", run.call.request_id, exc.message)
        await _end_broken(request, response, upstream.content_type, exc)
        return response
    except ConnectionResetError:  # the client left: nothing more to send, nothing to log
        upstream.close()
        return response
    except BaseException:
        upstream.close()
        raise
    upstream.release()
    return response


async def _end_broken(
    request: web.Request, response: web.StreamResponse, content_type: str, exc: GatewayError
) -> None:
    """End an answer whose upstream broke so that the client cannot take it for whole:
    an event stream with an ``error`` event (as the API ends its own streams), any other
    body by cutting the connection (a normal end would make a truncated file look whole)."""
    if content_type == "text/event-stream":
        with contextlib.suppress(ConnectionResetError):
            await response.write(sse_error_event(exc.error_type, exc.message))
            await response.write_eof()
            return
    if request.transport is not None:
        request.transport.abort()


def _names_results_url(path: str) -> bool:
    """A batch, or a page of batches (not the results themselves)."""
    path = path.partition("?")[0]
    return path.startswith("/v1/messages/batches") and not path.endswith("/results")


async def _with_own_results_url(request: web.Request, answer: OpenStream) -> web.Response:
    upstream = answer.response
    try:
        body = await upstream.read()
    except BaseException:
        upstream.close()
        raise
    upstream.release()
    api = answer.deployment.client.base_url.rstrip("/")
    own = _own_base_url(request)
    pattern = rb'("results_url"\s*:\s*")' + re.escape(api.encode())
    body = re.sub(pattern, lambda m: m.group(1) + own.encode(), body)
    headers = answer.headers
    headers.popall("content-length", None)
    return web.Response(status=upstream.status, body=body, headers=headers)


def _own_base_url(request: web.Request) -> str:
    """The address the client called; behind a reverse proxy, the one it says it was."""
    scheme = request.headers.get("x-forwarded-proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("x-forwarded-host", request.host).split(",")[0].strip()
    return f"{scheme}://{host}"


class BodyStream:
    """A client's request body as an async iterator of chunks, at most ``limit`` bytes.

    It is read by the HTTP client as it sends, which reports a failure here only as a
    failed upstream request: ``failure`` keeps the real cause (too large, too slow).
    """

    __slots__ = ("_content", "_limit", "failure", "received")

    def __init__(self, content: StreamReader, limit: int) -> None:
        self._content = content
        self._limit = limit
        self.received = 0
        self.failure: GatewayError | None = None

    def __aiter__(self) -> BodyStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._content.readany()
        except GatewayError as exc:  # the connection's body deadline (408)
            self.failure = exc
            raise
        if not chunk:
            raise StopAsyncIteration
        self.received += len(chunk)
        if self.received > self._limit:
            self.failure = RequestTooLarge(too_large(self._limit))
            raise self.failure
        return chunk
