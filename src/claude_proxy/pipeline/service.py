"""The upstream-call service: the one way any call reaches the API.

Handlers, the WebSocket endpoint and internal sub-calls (continuations, map and reduce
calls, summaries) all call through it, so none bypasses a tenant's window:

- admission first (routes that are admitted: the tenant's window, the upstream window,
  the per-minute limits, fair queueing), released when the answer ends, with its usage;
- the forwarder's attempts (router, retries, breaker, budget);
- for streams, the relay: healing after breaks and continuation past ``max_tokens``,
  two triggers of one splice;
- the tokens each upstream answer used, counted in the metrics where it ends.

``send`` returns a whole answer (an ``UpstreamReply``); ``open_stream`` an open
``LiveAnswer`` whose ``events()`` the caller relays (or the error reply); ``message``
a parsed Message for sub-calls, through either; ``relay`` a relayed route's answer
with its body unread (files, batches: not admitted, not parsed).

A call a stage has answered already (``call.prepared``: a response cache's hit) is
answered with that, as ``send``'s reply or as a ``StoredStream``: nothing is admitted
(it costs the upstream nothing, so it takes no slot and no tokens of the tenant's
limits) and nothing is sent upstream.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any

import orjson
from multidict import CIMultiDict

from claude_proxy.admission import Admission, Ticket, Usage
from claude_proxy.errors import GatewayError
from claude_proxy.jsonbytes import to_json
from claude_proxy.observability import Metrics
from claude_proxy.pipeline.call import Call
from claude_proxy.state import StateUnavailable
from claude_proxy.streaming.accumulate import Accumulator
from claude_proxy.streaming.relay import PIECES, Relay
from claude_proxy.streaming.sse import Event, EventSplitter
from claude_proxy.tokens import TokenCounter, estimate_input_tokens
from claude_proxy.upstream.client import cut
from claude_proxy.upstream.forwarder import (
    AttemptLog,
    ClientBody,
    Forwarder,
    OpenStream,
    UpstreamReply,
)

__all__ = ["LiveAnswer", "StoredStream", "UpstreamCalls"]

_log = logging.getLogger("claude_proxy.upstream")


class UpstreamCalls:
    def __init__(
        self,
        forwarder: Forwarder,
        admission: Admission,
        metrics: Metrics,
        counter: TokenCounter,
    ) -> None:
        self._forwarder = forwarder
        self._admission = admission
        self._metrics = metrics
        self.counter = counter
        # Models the upstream answered "no prefill" for, learned by the relays' heals.
        self.refusing_prefill: set[str] = set()
        self._settling: set[asyncio.Task[None]] = set()

    async def send(self, call: Call) -> UpstreamReply:
        """The whole answer: the first success, or the last failure once retrying stops."""
        if call.prepared is not None:
            return call.prepared
        if call.max_continuations > 0 and not call.stream:
            return await self._send_continued(call)
        ticket = await self._admit(call) if call.route.admitted else None
        max_tokens = call.body.get("max_tokens")
        log = call.attempts = self._forwarder.start(
            call.upstream_request(),
            stream=False,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )
        try:
            reply = await self._forwarder.send(log, call.upstream_body)
            if reply.status == 200 and call.route.admitted:
                call.usage = usage_of(reply.body)
            return reply
        finally:
            if ticket is not None:
                if call.after_reply is not None:  # run by settle_later's own task
                    call.after_reply.append(functools.partial(self._settle_now, ticket, call, log))
                else:
                    await self._settle(ticket, call, log)

    async def open_stream(self, call: Call) -> LiveAnswer | StoredStream | UpstreamReply:
        """An answer whose first part is open, or the upstream's final error reply."""
        if call.prepared is not None:
            return StoredStream(call.prepared)
        ticket = await self._admit(call)
        log = call.attempts = self._forwarder.start(call.upstream_request())
        try:
            opened = await self._forwarder.open_stream(log, call.upstream_body)
        except BaseException:
            await self._settle(ticket, call, log)
            raise
        if isinstance(opened, UpstreamReply):
            await self._settle(ticket, call, log)
            return opened
        return LiveAnswer(self, call, ticket, log, opened)

    async def relay(
        self, call: Call, body: bytes | ClientBody | None
    ) -> OpenStream | UpstreamReply:
        """A relayed route: its answer open (below 400: the caller streams the body and
        releases it) or an error read whole. ``body`` as bytes may be sent again; as an
        iterable it streams through once."""
        log = call.attempts = self._forwarder.start_relayed(
            call.upstream_request(), replayable=not isinstance(body, ClientBody)
        )
        return await self._forwarder.open_relayed(log, body)

    async def message(self, call: Call) -> dict[str, Any]:
        """A sub-call's answer as a parsed Message; an error answer raises ``GatewayError``."""
        reply = await self.send(call)
        if reply.status != 200:
            raise _reply_error(reply)
        message: dict[str, Any] = orjson.loads(reply.body)
        return message

    def settle_later(self, jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
        """Run the settles an entry left in ``call.after_reply``, in the background
        (each logs its own failure); ``drain`` waits for them at shutdown."""
        task = asyncio.ensure_future(_run_all(jobs))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def drain(self) -> None:
        """Wait for the settles still running (before admission closes)."""
        if self._settling:
            await asyncio.wait(set(self._settling))

    async def _send_continued(self, call: Call) -> UpstreamReply:
        """A JSON call continued past max_tokens: streamed upstream, spliced, returned whole."""
        streamed = call.subcall({**call.body, "stream": True})
        streamed.request_id = call.request_id
        streamed.max_continuations = call.max_continuations
        try:
            opened = await self.open_stream(streamed)
        finally:
            call.attempts, call.queue_wait = streamed.attempts, streamed.queue_wait
        if isinstance(opened, UpstreamReply):
            return opened
        accumulator = Accumulator()
        try:
            async for events in opened.events():
                accumulator.feed(events)
        finally:
            await opened.aclose()
            call.usage = streamed.usage
        headers = CIMultiDict(opened.headers)
        headers["content-type"] = "application/json"
        return UpstreamReply(200, headers, to_json(accumulator.message))

    async def _admit(self, call: Call) -> Ticket:
        """Wait for the tenant's turn; the time waited goes into ``call.queue_wait``.

        The tenant gauges (holding, waiting) are fed by the admission backend itself,
        whose observer the metrics are (``admission.base.AdmissionObserver``).
        """
        assert call.tenant is not None, "the authenticate stage runs before any upstream call"
        max_tokens = call.body.get("max_tokens")
        reserved = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0
        reserved *= 1 + call.max_continuations
        started = time.perf_counter()
        try:
            return await self._admission.admit(
                call.tenant, estimate_input_tokens(call.body), reserved
            )
        finally:
            call.queue_wait = time.perf_counter() - started

    async def _settle(self, ticket: Ticket, call: Call, log: AttemptLog) -> None:
        """``_settle_now``, shielded: this runs when the client has gone away too, and
        must not be cut short."""
        await asyncio.shield(self._settle_now(ticket, call, log))

    async def _settle_now(self, ticket: Ticket, call: Call, log: AttemptLog) -> None:
        """Count the answer's tokens, release the slot with the real usage and tell the
        adaptive window how it went.

        A shared store that fails here costs nothing the client sees: the answer is
        delivered and the slot's lease expires. Nothing is raised: nobody may be left
        to read it.
        """
        usage = Usage.from_api(call.usage) if call.usage is not None else None
        if usage is not None:
            tenant = call.tenant.name if call.tenant is not None else None
            self._metrics.tokens_used(tenant, call.model, usage)
        try:
            await ticket.release(usage)
            await self._admission.on_upstream_status(529 if log.overloaded else 200)
        except StateUnavailable as exc:
            _log.warning("admission settle failed for %s: %s", call.request_id, exc)
        except Exception:
            _log.exception("admission settle failed for %s", call.request_id)


async def _run_all(jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
    for job in jobs:  # one after the other, in this one task: a task each costs more
        await job()


class LiveAnswer:
    """A streamed answer in progress: relay its ``events()``, then ``aclose()`` it."""

    __slots__ = ("_call", "_calls", "_log", "_relay", "_ticket", "headers")
    stored = False  # generated now

    def __init__(
        self, calls: UpstreamCalls, call: Call, ticket: Ticket, log: AttemptLog, opened: OpenStream
    ) -> None:
        self._calls = calls
        # Dropped once closed: the call holds its generation, which holds this answer, and
        # a cycle would leave every stream's objects to the garbage collector.
        self._call: Call | None = call
        self._ticket = ticket
        self._log = log
        self.headers = opened.headers
        self._relay = Relay(
            calls._forwarder,
            log,
            opened,
            call.body,
            call.upstream_body,
            counter=calls.counter,
            max_continuations=call.max_continuations,
            refusing_prefill=calls.refusing_prefill,
        )

    @property
    def error_type(self) -> str | None:
        return self._relay.error_type

    def events(self) -> AsyncGenerator[list[Event], None]:
        """Batches of client events until the answer ends (whole, or with an error event)."""
        return self._relay.events()

    async def aclose(self) -> None:
        """Release the connection and the admission slot, and count the tokens; once."""
        call, self._call = self._call, None
        if call is None:
            return
        self._relay.close()
        call.usage = self._relay.usage
        await self._calls._settle(self._ticket, call, self._log)


class StoredStream:
    """A stream a stage answered in place of the upstream (``call.prepared``): its events,
    as the upstream sent them, in the pieces a relay would read them in."""

    __slots__ = ("_body", "headers")
    stored = True  # replayed, not generated: not timed as the upstream's answers are

    def __init__(self, reply: UpstreamReply) -> None:
        self.headers = reply.headers
        self._body = reply.body

    @property
    def error_type(self) -> str | None:
        return None

    async def events(self) -> AsyncGenerator[list[Event], None]:
        splitter = EventSplitter()
        for piece in cut(self._body, *PIECES):
            events = splitter.feed_runs(piece)
            if events:
                yield events

    async def aclose(self) -> None:
        """Nothing is held: no connection, no admission slot."""


def usage_of(body: bytes) -> dict[str, Any] | None:
    # The API puts usage last: parse just that object when it is, the whole body if not.
    start = body.rfind(b'"usage":')
    if start > 0 and body.endswith(b"}}"):
        try:
            usage = orjson.loads(body[start + 8 : -1])
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(usage, dict):
                return usage
    try:
        usage = orjson.loads(body).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None


def _reply_error(reply: UpstreamReply) -> GatewayError:
    error_type, message = reply.error()
    failure = GatewayError(message)
    failure.status, failure.error_type = reply.status, error_type
    return failure
