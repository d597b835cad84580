"""What a stage is: one step of the request path, with optional hooks on the answer.

Every stage has a ``name``, the ``routes`` it applies to, and ``on_request``, which
gets the ``Call`` in order with the other stages and may change it (through the
call's methods) or refuse it by raising a ``GatewayError``. A stage may also have any
of these hooks, found when the chain is built (a stage without one costs nothing on
that path):

- ``on_message(call, message)``: a whole JSON answer on its way back (a parsed
  Messages response); returns the message to send on. With ``wants_message(call)``, a
  stage says whether this call's answer concerns it: when none does, the answer is not
  parsed at all.
- ``event_filter(call)``: an ``EventFilter`` for one stream (or None), whose
  ``on_events`` sees each batch of events on its way back and may hold some back
  (a placeholder split across two deltas), and whose ``flush`` gives back what it
  holds when the answer ends early (abandoned, failed). Filters run before the
  replay log, so a resumed stream replays what the client was sent.
- ``settle(call)``: a whole JSON answer is about to be sent (after ``on_message``): finish
  what must be durable before the client has it (a session's turn written). A stream's
  filter has its own ``settle``, awaited before its ``message_stop`` is sent.
- ``on_finish(call, outcome)``: the call is over (answered, refused, failed or left);
  called for every stage whose ``on_request`` ran, in reverse order.

Answer hooks run in reverse order of the chain, as Bifrost's post-hooks do: the stage
nearest the upstream sees the answer first.

A stage may answer in place of the upstream (the response cache's hit): in
``on_request`` it sets ``call.prepared`` to a 200 ``UpstreamReply`` whose body is the
JSON Message, or for a stream the SSE bytes of its events. The stages after it still
run; then the upstream-call service returns that answer as the upstream's, without
admission (no slot, no tokens: it costs the upstream nothing) and without an upstream
call, and the answer hooks, filters and replay log see it as they would see the
upstream's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from claude_proxy.pipeline.call import Call, Route
from claude_proxy.streaming.generation import EventFilter

__all__ = [
    "ALL_ROUTES",
    "API_ROUTES",
    "EventFilter",
    "EventStage",
    "FinishStage",
    "MessageStage",
    "Outcome",
    "SettleStage",
    "Stage",
]

ALL_ROUTES = frozenset(Route)
# Every route a client calls the API by (the WebSocket upgrade is not a call itself).
API_ROUTES = ALL_ROUTES - {Route.WEBSOCKET}


@dataclass(slots=True)  # not frozen: built per request, and frozen dataclasses init slowly
class Outcome:
    """How a call ended: the status sent (499: the client left) and the error type."""

    status: int
    error_type: str | None = None


class Stage(Protocol):
    name: str
    routes: frozenset[Route]

    async def on_request(self, call: Call) -> None:
        """Look at or change ``call``; raise a ``GatewayError`` to refuse it."""


@runtime_checkable
class MessageStage(Protocol):
    name: str

    def on_message(self, call: Call, message: dict[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class EventStage(Protocol):
    name: str

    def event_filter(self, call: Call) -> EventFilter | None: ...


@runtime_checkable
class SettleStage(Protocol):
    name: str

    async def settle(self, call: Call) -> None: ...


@runtime_checkable
class FinishStage(Protocol):
    name: str

    def on_finish(self, call: Call, outcome: Outcome) -> None: ...
