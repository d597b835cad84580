"""Relay an upstream event stream as the client's events, healing it when it breaks.

``relay_events`` starts from a stream that is already open (the client has its
200) and hands each batch of client events to ``emit`` as soon as the upstream
chunk that completed them arrives. When the upstream stream breaks (connection
cut, an ``error`` event, an end without ``message_stop``):
- before any content reached the client, the request is simply retried;
- after content, a continuation request carries on from the text the client
  already has, and its events are spliced into the same client stream;
- when that is impossible (a tool_use or thinking block in progress, healing
  off, attempts or budget spent) the client gets an Anthropic ``error`` event,
  never a fake end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import orjson

from claude_proxy.errors import GatewayError, error_body
from claude_proxy.streaming.continuation import build_continuation, refuses_prefill
from claude_proxy.streaming.splice import Splicer
from claude_proxy.streaming.sse import Event, EventSplitter, encode_event
from claude_proxy.upstream.forwarder import AttemptLog, Forwarder, OpenStream, UpstreamReply

__all__ = ["ATTEMPTS_HEADER", "Emit", "relay_events", "sse_error_event"]

ATTEMPTS_HEADER = "x-proxy-attempts"
# Error events that mean "try again", as the same statuses would.
_RETRYABLE_ERRORS = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)
_EVENT_END = b"\n\n"

Emit = Callable[[list[bytes]], Awaitable[None]]
"""Receives the client's next events, each a complete SSE event (``event:``/``data:``)."""


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


async def relay_events(
    forwarder: Forwarder, log: AttemptLog, opened: OpenStream, splicer: Splicer, emit: Emit
) -> str | None:
    """Relay until the answer ends; None when it ended whole, else the ``error.type`` sent.

    ``splicer`` holds what the client has seen (its ``usage`` once the answer ends).
    """
    call = log.call
    continue_turn = refuses_prefill(str(call.body.get("model", "")))
    while True:
        broke = await _pump(opened, splicer, emit)
        call.usage = splicer.usage
        if broke is None:
            return None
        if broke.overloaded:
            log.overloaded = True
        forwarder.stream_broke(opened.deployment, broke.reason)
        if splicer.stop_reason_sent:
            # Everything but message_stop arrived: the answer is whole.
            await emit([encode_event("message_stop", {"type": "message_stop"})])
            return None
        reason = _why_not_continue(broke, splicer, forwarder, log, call.body)
        if reason is None and not await forwarder.may_retry(log, opened.deployment):
            reason = "the retry limits were reached"
        if reason is not None:
            forwarder.metrics.unhealable()
            return await _fail(emit, _break_error_event(broke, reason))
        body = call.raw_body
        if splicer.content_sent:
            continuation = build_continuation(
                call.body, splicer.text_so_far(), continue_turn=continue_turn
            )
            if continuation is None:
                return await _fail(
                    emit, _break_error_event(broke, "the conversation cannot be continued")
                )
            log.heals += 1
            forwarder.metrics.heal()
            splicer.begin_continuation(continuation.stripped_tail, continuation.via_continue_turn)
            body = continuation.body
        elif splicer.message_started:
            splicer.begin_continuation("", via_continue_turn=False)
        while True:
            try:
                reopened = await forwarder.open_stream(log, body)
            except GatewayError as exc:
                # The last attempt failed without a reply (connection refused or cut,
                # timeout, no deployment left). Before the client's 200 that is an error
                # response; mid-stream it must be an error event, never a silent end.
                return await _fail(emit, sse_error_event(exc.error_type, exc.message))
            if isinstance(reopened, OpenStream):
                opened = reopened
                break
            if _prefill_refused(reopened) and not continue_turn and splicer.content_sent:
                continue_turn = True  # a model our table did not know: use the continue turn
                continuation = build_continuation(
                    call.body, splicer.text_so_far(), continue_turn=True
                )
                if continuation is not None:
                    splicer.begin_continuation(continuation.stripped_tail, True)
                    body = continuation.body
                    continue
            return await _fail(emit, _reply_error_event(reopened))


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


async def _pump(opened: OpenStream, splicer: Splicer, emit: Emit) -> _Break | None:
    """Forward events until the message ends (None) or the upstream breaks."""
    splitter = EventSplitter()
    finished = False
    try:
        async for chunk in opened.response.content.iter_any():
            out: list[bytes] = []
            for event in splitter.feed(chunk):
                if event.name == "error":
                    if out:
                        await emit(out)
                    return _Break("error_event", event)
                data = splicer.on_event(event)
                if data is event.raw:
                    out.append(data)  # the common case: passed through untouched
                elif data:
                    out.extend(_split_events(data))
            if out:
                await emit(out)
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


def _split_events(data: bytes) -> list[bytes]:
    """Rewritten output may hold several events; each gets its own id downstream."""
    if data.count(_EVENT_END) == 1:
        return [data]
    return [part + _EVENT_END for part in data.split(_EVENT_END) if part]


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


async def _fail(emit: Emit, event: bytes) -> str:
    await emit([event])
    error_type = Event("error", event).json().get("error", {}).get("type")
    return str(error_type or "api_error")
