"""Relay an upstream event stream as one client answer, healing and continuing it.

``Relay.events()`` starts from a stream that is already open and yields each batch
of client events as soon as the upstream chunk that completed them arrives. Two
triggers start another upstream part, spliced into the same answer:

- a **break** (connection cut, an ``error`` event, an end without ``message_stop``):
  before any content reached the client the request is simply retried; after content,
  a heal carries on from the text the client already has, within the ``max_tokens``
  the answer has left;
- a **stop at max_tokens** while continuations are allowed: a continuation carries on
  with a fresh ``max_tokens``, up to ``max_continuations`` times.

When neither can be done (a tool_use or thinking block in progress, healing off,
attempts or budget spent) the client gets an Anthropic ``error`` event after a break,
and the honest ``max_tokens`` end after a stop: never a fake ``end_turn``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from claude_proxy.errors import GatewayError, error_body
from claude_proxy.observability import Metrics
from claude_proxy.streaming.continuation import build_continuation, refuses_prefill
from claude_proxy.streaming.splice import Splicer
from claude_proxy.streaming.sse import Event, EventSplitter
from claude_proxy.tokens import TokenCounter
from claude_proxy.upstream.forwarder import AttemptLog, Forwarder, OpenStream, UpstreamReply

__all__ = ["ATTEMPTS_HEADER", "Relay", "error_event", "sse_error_event"]

ATTEMPTS_HEADER = "x-proxy-attempts"
# Error events that mean "try again", as the same statuses would.
_RETRYABLE_ERRORS = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)
_MESSAGE_STOP = Event.encode("message_stop", {"type": "message_stop"})
# Model names are few; the bound only keeps a misbehaving upstream from growing the set.
_MAX_LEARNED = 256
# What arrives from the upstream is relayed in pieces (``upstream.client.cut``): the first
# of at most 4 KB (about 30 text deltas, or all of a short answer), so that when a long
# answer arrives at once its first events reach the client after one small piece's work,
# not the whole answer's; the rest of at most 64 KB, so that it costs a few writes to the
# client, not one per 8 KB.
PIECES = (4096, 65536)


def sse_error_event(error_type: str, message: str) -> bytes:
    return b"event: error\ndata: " + error_body(error_type, message) + b"\n\n"


def error_event(error_type: str, message: str) -> Event:
    return Event("error", sse_error_event(error_type, message))


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


class Relay:
    """The events of one answer, from its open first part to its end."""

    def __init__(
        self,
        forwarder: Forwarder,
        log: AttemptLog,
        opened: OpenStream,
        body: Mapping[str, Any],
        raw_body: bytes | None,
        *,
        counter: TokenCounter,
        max_continuations: int = 0,
        refusing_prefill: set[str] | None = None,
    ) -> None:
        """``refusing_prefill``: models seen refusing a prefill (shared by the answers of one
        gateway, so only the first heal on a model our table does not know costs a 400)."""
        self.splicer = Splicer()
        # The error.type the answer ended with; None while it runs and when it ended whole.
        self.error_type: str | None = None
        self._forwarder = forwarder
        self._metrics: Metrics = forwarder.metrics
        self._log = log
        self._current = opened
        self._body = body
        self._raw_body = raw_body
        self._counter = counter
        self._continuations_left = max_continuations
        self._allowed_per_part = log.allowed
        model = body.get("model")
        self._model = model if isinstance(model, str) else None
        self._refusing_prefill = refusing_prefill if refusing_prefill is not None else set()
        # Whether a continuation needs a user turn: decided on the first one (most answers
        # never need one, and the look-up is not free).
        self._turn: bool | None = None
        max_tokens = body.get("max_tokens")
        self._max_tokens = max_tokens if isinstance(max_tokens, int) else None
        # The max_tokens the current part was asked for: it cannot have used more.
        self._part_budget = self._max_tokens
        thinking = body.get("thinking")
        self._thinking = isinstance(thinking, dict) and thinking.get("type") in (
            "enabled",
            "adaptive",
        )

    @property
    def _continue_turn(self) -> bool:
        if self._turn is None:
            model = self._model or ""
            self._turn = refuses_prefill(model) or model in self._refusing_prefill
        return self._turn

    @property
    def usage(self) -> dict[str, Any] | None:
        """The answer's usage as the client saw it, once its message_delta was sent."""
        return self.splicer.usage

    def close(self) -> None:
        """Drop the current part's connection (a no-op once the part was read to its end)."""
        self._current.response.close()

    async def events(self) -> AsyncGenerator[list[Event], None]:
        """Batches of client events until the answer ends (whole, or with an error event)."""
        splicer = self.splicer
        while True:
            splicer.may_continue = self._continuations_left > 0 and not self._thinking
            # One part, inline rather than in a generator of its own: this is the hot path.
            opened = self._current
            splitter = EventSplitter()
            broke: _Break | None = None
            ended = False
            try:
                async for chunk in opened.response.chunks(PIECES):
                    out: list[Event] = []
                    for event in splitter.feed_runs(chunk):
                        if event.name == "error":
                            broke = _Break("error_event", event)
                            break
                        splicer.on_event(event, out)
                    if out:
                        yield out
                    if broke is not None:
                        break
                    if splicer.part_ended:
                        ended = True
                        break
                else:
                    broke = _Break("eof")
            except GatewayError:
                broke = _Break("cut")
            finally:
                if ended:
                    opened.response.release()
                else:
                    opened.response.close()
            if broke is not None:
                if broke.overloaded:
                    self._log.overloaded = True
                self._forwarder.stream_broke(opened.deployment, broke.reason)
            if splicer.truncated:
                body = self._continuation()
                if body is None:
                    yield splicer.finish_held()
                    return
            elif broke is None:
                return  # the answer ended whole
            elif splicer.stop_reason_sent:
                # Everything but message_stop arrived: the answer is whole.
                yield [_MESSAGE_STOP]
                return
            else:
                healed = await self._heal(broke)
                if isinstance(healed, list):
                    yield healed
                    return
                body = healed
            reopened = await self._reopen(body)
            if reopened is not None:
                yield reopened
                return

    def _continuation(self) -> bytes | None:
        """The body of the next part after a max_tokens stop, or None: end the answer."""
        splicer = self.splicer
        self._continuations_left -= 1
        built = build_continuation(
            self._body,
            splicer.text_so_far(),
            continue_turn=self._continue_turn,
            max_tokens=self._max_tokens,
        )
        if built is None:
            return None
        splicer.end_part(splicer.part_reported_tokens, new_segment=True)
        self._log.continuations += 1
        self._log.allowed += self._allowed_per_part  # each part gets its own retries
        self._metrics.continuation()
        self._part_budget = self._max_tokens
        splicer.begin_part(built.stripped_tail, built.via_continue_turn)
        return built.body

    async def _heal(self, broke: _Break) -> bytes | list[Event] | None:
        """The body of the part that heals ``broke``, or the events that end the answer."""
        splicer = self.splicer
        reason = self._why_not_heal(broke)
        deployment = self._current.deployment
        if reason is None and not await self._forwarder.may_retry(self._log, deployment):
            reason = "the retry limits were reached"
        if reason is not None:
            self._metrics.unhealable()
            return self._fail(_break_error_event(broke, reason))
        if not splicer.content_sent:
            if splicer.message_started:
                splicer.begin_part("", via_continue_turn=False)
            return self._raw_body  # nothing reached the client yet: a plain retry
        spent = await self._counter.output_tokens(
            self._model, splicer.part_text(), self._log.request.headers
        )
        if self._part_budget is not None:
            spent = min(spent, self._part_budget)
        splicer.end_part(spent, new_segment=False)
        budget = None
        if self._max_tokens is not None:
            budget = self._max_tokens - splicer.segment_tokens
            if budget < 1:
                # What reached the client may already be all max_tokens allows.
                self._log.ended_by_gateway = True
                return splicer.end_at_max_tokens()
        built = build_continuation(
            self._body, splicer.text_so_far(), continue_turn=self._continue_turn, max_tokens=budget
        )
        if built is None:
            return self._fail(_break_error_event(broke, "the conversation cannot be continued"))
        self._log.heals += 1
        self._metrics.heal()
        self._part_budget = budget
        splicer.begin_part(built.stripped_tail, built.via_continue_turn)
        return built.body

    def _why_not_heal(self, broke: _Break) -> str | None:
        settings = self._forwarder.settings
        if not broke.retryable:
            return "the upstream error is final"
        if not self.splicer.content_sent:
            return None  # nothing reached the client yet: a plain retry
        if not settings.heal_streams:
            return "stream healing is disabled"
        if self._log.heals >= settings.max_heals:
            return "the stream broke too many times"
        if self._thinking:
            return "extended thinking cannot be continued"
        return self.splicer.blocker()

    async def _reopen(self, body: bytes | None) -> list[Event] | None:
        """Open the next part (None), or the error event that ends the answer."""
        while True:
            try:
                reopened = await self._forwarder.open_stream(self._log, body)
            except GatewayError as exc:
                # The last attempt failed without a reply (connection refused or cut,
                # timeout, no deployment left). Mid-stream that must be an error event,
                # never a silent end.
                return self._fail(error_event(exc.error_type, exc.message))
            if isinstance(reopened, OpenStream):
                self._current = reopened
                return None
            splicer = self.splicer
            if _prefill_refused(reopened) and not self._continue_turn and splicer.content_sent:
                self._turn = True  # a model our table did not know
                if self._model is not None and len(self._refusing_prefill) < _MAX_LEARNED:
                    self._refusing_prefill.add(self._model)
                self._part_budget = self._retry_budget()
                built = build_continuation(
                    self._body,
                    splicer.text_so_far(),
                    continue_turn=True,
                    max_tokens=self._part_budget,
                )
                if built is not None:
                    splicer.begin_part(built.stripped_tail, True)
                    body = built.body
                    continue
            return self._fail(_reply_error_event(reopened))

    def _retry_budget(self) -> int | None:
        if self._max_tokens is None:
            return None
        return max(1, self._max_tokens - self.splicer.segment_tokens)

    def _fail(self, event: Event) -> list[Event]:
        self.error_type = str(event.json().get("error", {}).get("type") or "api_error")
        return [*self.splicer.release_stop(), event]


def _prefill_refused(reply: UpstreamReply) -> bool:
    return reply.status == 400 and b"prefill" in reply.body


def _reply_error_event(reply: UpstreamReply) -> Event:
    return error_event(*reply.error())


def _break_error_event(broke: _Break, reason: str) -> Event:
    if broke.event is not None:
        return broke.event  # the upstream's own error says it best
    what = "was cut" if broke.reason == "cut" else "ended before message_stop"
    return error_event("api_error", f"The upstream stream {what} and {reason}.")
