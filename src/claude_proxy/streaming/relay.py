"""Relay an upstream event stream to the client, healing it when it breaks.

Events are written to the client as soon as each complete event arrives. When
the upstream stream breaks (connection cut, an ``error`` event, an end without
``message_stop``):
- before any content reached the client, the request is simply retried;
- after content, a continuation request carries on from the text the client
  already has, and its events are spliced into the same client stream;
- when that is impossible (a tool_use or thinking block in progress, healing
  off, attempts or budget spent) the client gets an Anthropic ``error`` event,
  never a fake end.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import web

from claude_proxy.errors import error_body
from claude_proxy.streaming.continuation import build_continuation, refuses_prefill
from claude_proxy.streaming.splice import Splicer
from claude_proxy.streaming.sse import Event, EventSplitter, encode_event
from claude_proxy.upstream.forwarder import AttemptLog, Forwarder, OpenStream, UpstreamReply

__all__ = ["ATTEMPTS_HEADER", "ClientDisconnected", "relay_stream", "sse_error_event"]

ATTEMPTS_HEADER = "x-proxy-attempts"
# Error events that mean "try again", as the same statuses would.
_RETRYABLE_ERRORS = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)


class ClientDisconnected(Exception):
    """The client went away while we were writing to it."""


def sse_error_event(error_type: str, message: str) -> bytes:
    return b"event: error\ndata: " + error_body(error_type, message) + b"\n\n"


@dataclass(slots=True)
class _Break:
    reason: str  # "cut", "eof" or "error_event"
    event: Event | None = None

    @property
    def error_type(self) -> str | None:
        return None if self.event is None else self.event.json().get("error", {}).get("type")

    @property
    def retryable(self) -> bool:
        return self.event is None or self.error_type in _RETRYABLE_ERRORS

    @property
    def overloaded(self) -> bool:
        return self.error_type in ("overloaded_error", "rate_limit_error")


async def relay_stream(
    request: web.Request, forwarder: Forwarder, log: AttemptLog
) -> web.StreamResponse:
    call = log.call
    splicer = Splicer()
    client: web.StreamResponse | None = None
    body = call.raw_body
    continue_turn = refuses_prefill(str(call.body.get("model", "")))
    while True:
        opened = await forwarder.open_stream(log, body)
        if isinstance(opened, UpstreamReply):
            if client is None:
                return _json_reply(opened, log)
            if _prefill_refused(opened) and not continue_turn and splicer.content_sent:
                continue_turn = True  # a model our table did not know: use the continue turn
                continuation = build_continuation(
                    call.body, splicer.text_so_far(), continue_turn=True
                )
                if continuation is not None:
                    splicer.begin_continuation(continuation.stripped_tail, True)
                    body = continuation.body
                    continue
            await _finish(client, _reply_error_event(opened))
            return client
        if client is None:
            client = await _open_client(request, opened, log)
        broke = await _pump(opened, splicer, client)
        call.usage = splicer.usage
        if broke is not None and broke.overloaded:
            log.overloaded = True
        if broke is None:
            await _write(client.write_eof())
            return client
        forwarder.stream_broke(opened.deployment, broke.reason)
        if splicer.stop_reason_sent:
            # Everything but message_stop arrived: the answer is whole.
            await _finish(client, encode_event("message_stop", {"type": "message_stop"}))
            return client
        reason = _why_not_continue(broke, splicer, forwarder, log, call.body)
        if reason is None and not await forwarder.may_retry(log, opened.deployment):
            reason = "the retry limits were reached"
        if reason is not None:
            forwarder.stats.unhealable += 1
            await _finish(client, _break_error_event(broke, reason))
            return client
        if splicer.content_sent:
            continuation = build_continuation(
                call.body, splicer.text_so_far(), continue_turn=continue_turn
            )
            if continuation is None:
                await _finish(
                    client, _break_error_event(broke, "the conversation cannot be continued")
                )
                return client
            log.heals += 1
            forwarder.stats.heals += 1
            splicer.begin_continuation(continuation.stripped_tail, continuation.via_continue_turn)
            body = continuation.body
        else:
            if splicer.message_started:
                splicer.begin_continuation("", via_continue_turn=False)
            body = call.raw_body


def _why_not_continue(
    broke: _Break, splicer: Splicer, forwarder: Forwarder, log: AttemptLog, body: dict[str, object]
) -> str | None:
    if not broke.retryable:
        return "the upstream error is final"
    if not splicer.content_sent:
        return None  # nothing reached the client yet: a plain retry
    if not forwarder.settings.heal_streams:
        return "stream healing is disabled"
    if log.heals >= forwarder.settings.max_heals:
        return "the stream broke too many times"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        return "extended thinking cannot be continued"
    return splicer.blocker()


async def _pump(opened: OpenStream, splicer: Splicer, client: web.StreamResponse) -> _Break | None:
    """Forward events until the message ends (None) or the upstream breaks."""
    splitter = EventSplitter()
    finished = False
    try:
        async for chunk in opened.response.content.iter_any():
            out: list[bytes] = []
            for event in splitter.feed(chunk):
                if event.name == "error":
                    if out:
                        await _write(client.write(b"".join(out)))
                    return _Break("error_event", event)
                data = splicer.on_event(event)
                if data:
                    out.append(data)
            if out:
                await _write(client.write(b"".join(out)))
            if splicer.finished:
                finished = True
                return None
        return _Break("eof")
    except (aiohttp.ClientError, TimeoutError):
        return _Break("cut")
    finally:
        if finished:
            opened.response.release()
        else:
            opened.response.close()


async def _open_client(
    request: web.Request, opened: OpenStream, log: AttemptLog
) -> web.StreamResponse:
    headers = opened.headers
    headers.setdefault("request-id", log.call.request_id)
    headers["cache-control"] = "no-cache"
    # Ask reverse proxies in front of us (nginx) not to buffer the stream either.
    headers["x-accel-buffering"] = "no"
    headers[ATTEMPTS_HEADER] = str(log.count)
    client = web.StreamResponse(status=200, headers=headers)
    await _write(client.prepare(request))
    return client


def _json_reply(reply: UpstreamReply, log: AttemptLog) -> web.Response:
    reply.headers.setdefault("request-id", log.call.request_id)
    reply.headers[ATTEMPTS_HEADER] = str(log.count)
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


def _prefill_refused(reply: UpstreamReply) -> bool:
    return reply.status == 400 and b"prefill" in reply.body


def _reply_error_event(reply: UpstreamReply) -> bytes:
    try:
        payload = orjson.loads(reply.body)
        error = payload["error"]
        return sse_error_event(str(error["type"]), str(error["message"]))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return sse_error_event("api_error", f"The upstream answered {reply.status}.")


def _break_error_event(broke: _Break, reason: str) -> bytes:
    if broke.event is not None:
        return broke.event.raw  # the upstream's own error says it best
    what = "was cut" if broke.reason == "cut" else "ended before message_stop"
    return sse_error_event("api_error", f"The upstream stream {what} and {reason}.")


async def _finish(client: web.StreamResponse, data: bytes) -> None:
    await _write(client.write(data))
    await _write(client.write_eof())


async def _write(operation: Awaitable[object]) -> None:
    try:
        await operation
    except ConnectionResetError as exc:
        raise ClientDisconnected() from exc
