"""Sessions: conversations the gateway remembers, for requests with ``x-session-id``.

Two stages share one turn (``call.state[TURN]``), because a turn's two halves belong at
two places in the chain:

- ``session_load`` runs early (before redaction): it takes the session's lock, so two
  requests of one session never interleave (across replicas too), loads the stored
  conversation and puts it before the request's new turn(s), with the stored ``system``
  unless the request brings its own. Redaction then sees (and reserves the placeholder
  names of) the whole conversation, and admission estimates what really goes upstream.
- ``session_save`` runs late (after redaction), so on the way back it sees the answer
  before pseudonyms are restored: the store never holds a value the policy keeps from the
  upstream. Once the answer is whole (a JSON 200, or a stream's ``message_stop``, healed
  or continued) it appends the new turn(s) and the answer, and only then is the end sent
  to the client: a turn whose response arrived survives a SIGKILL right after.
  The turn is stored without cache breakpoints, the client's or the gateway's, nested
  ones too, and so is its system: a breakpoint marks a prefix for the request that
  carries it, and stored, a client's mark on its newest message each turn would pile
  up past the API's four (a 400 for every later turn). ``prompt_cache`` marks each
  request afresh, the stored system too when it is long enough. A history stored with
  marks (before they were taken out) is loaded without them.

When the stored history and the new turn(s) do not fit the model's context window minus
``max_tokens`` (``sessions.budget``), ``session_load`` leaves the oldest whole turns out:
with ``overflow: drop`` they stay stored and are only not sent (every request fits the
whole history again); with ``overflow: summarize`` one sub-call has the model summarise
them, and the summary turn replaces them in the store (made once; if the session changed
meanwhile, it is sent but not stored). The summary is made of stored turns only, which
are what the upstream saw already: redaction has nothing to miss. How many messages were
left out or summarised is ``call.state[DROPPED]`` (the ``x-proxy-session-dropped`` header).

A failed, refused or abandoned call stores nothing. The lock is released when the turn is
stored, or when the call ends without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from claude_proxy.errors import GatewayError, InvalidRequest
from claude_proxy.pipeline.call import Call, CallKey, Route
from claude_proxy.pipeline.stage import EventFilter, Outcome
from claude_proxy.prompt_cache.marks import unmarked_content, unmarked_messages
from claude_proxy.sessions import (
    Session,
    SessionBusy,
    SessionConflict,
    SessionSettings,
    SessionStore,
)
from claude_proxy.sessions.budget import (
    Fitted,
    context_window,
    fit,
    summary_request,
    summary_text,
    summary_turn,
)
from claude_proxy.streaming.accumulate import Accumulator, StreamFailed
from claude_proxy.streaming.sse import Event

if TYPE_CHECKING:
    from claude_proxy.pipeline.service import UpstreamCalls

__all__ = [
    "DROPPED",
    "DROPPED_HEADER",
    "SESSION_HEADER",
    "TURN",
    "SessionLoad",
    "SessionSave",
    "SessionTurnConflict",
]

SESSION_HEADER = "x-session-id"
DROPPED_HEADER = "x-proxy-session-dropped"
_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_log = logging.getLogger("claude_proxy.sessions")


class SessionTurnConflict(GatewayError):
    """Another request of the same session is in progress (``sessions.on_busy: reject``)."""

    status = 409
    error_type = "invalid_request_error"


@dataclass(eq=False)
class _Turn:
    store: SessionStore
    tenant: str
    session_id: str
    version: int
    history: int  # messages loaded from the store, before the request's own
    system: Any | None  # the request's own system (stored with the turn), or None
    ttl_seconds: float | None
    lock: AbstractAsyncContextManager[None]
    answer: dict[str, Any] | None = None
    stored: bool = False
    released: bool = False
    background: set[asyncio.Task[None]] = field(default_factory=set)

    async def commit(self, call: Call) -> None:
        """Append the new turn(s) and the answer; release the lock."""
        if self.stored or self.answer is None:
            return
        # Only the new turn(s) are stored: the history before them is unmarked already.
        messages = unmarked_messages((call.body.get("messages") or [])[self.history :])
        try:
            for attempt in range(2):
                try:
                    await self.store.append(
                        self.tenant,
                        self.session_id,
                        [*messages, self.answer],
                        expected_version=self.version,
                        system=unmarked_content(self.system),
                        ttl_seconds=self.ttl_seconds,
                    )
                    self.stored = True
                    return
                except SessionConflict as exc:
                    # Another process wrote the session since this one read it (a cached
                    # copy was behind, or a lock's lease ran out under a stalled writer):
                    # the turn goes after theirs, whole; turns never interleave.
                    if attempt:
                        raise
                    self.version = await self._current_version(exc)
        except SessionConflict:
            _log.warning("session %s kept changing; a turn was not stored", self.session_id)
        finally:
            await self.release()

    async def _current_version(self, conflict: SessionConflict) -> int:
        """The version the store has now: told by the conflict when the store knows it."""
        if conflict.actual is not None:
            return conflict.actual
        fresh = await self.store.load(self.tenant, self.session_id)
        return fresh.version if fresh is not None else 0

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            await self.lock.__aexit__(None, None, None)
        except Exception:  # the lease expires anyway
            _log.warning("releasing the lock of session %s failed", self.session_id)

    def release_soon(self) -> None:
        """From a synchronous hook: release in a task of its own."""
        if self.released:
            return
        task = asyncio.ensure_future(self.release())
        self.background.add(task)
        task.add_done_callback(self.background.discard)


TURN: CallKey[_Turn] = CallKey("session_turn")
DROPPED: CallKey[int] = CallKey("session_dropped")
"""Of a session request: the stored messages left out of it, or summarised (0: none)."""
# Room kept for the summary turn: twice its max_tokens (the estimator counts a text high,
# up to about twice as many tokens as the model spends on it), plus this for its framing.
_SUMMARY_FRAMING = 64


@dataclass(frozen=True, slots=True)
class _Sent:
    """The conversation a session request sends, and the store's version it is based on."""

    messages: list[dict[str, Any]]
    history: int  # of ``messages``, the ones before the request's own
    dropped: int  # stored messages left out, or summarised
    version: int


class SessionLoad:
    """The ``session_load`` stage: takes the session's lock, puts the stored history (what
    fits of it) before the request's new turn(s).

    ``calls``: the upstream-call service, for ``overflow: summarize``'s sub-call; without
    it, turns that do not fit are dropped whatever the setting.
    """

    name = "session_load"
    routes = frozenset({Route.MESSAGES})

    def __init__(
        self,
        store: SessionStore,
        settings: SessionSettings,
        calls: UpstreamCalls | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._calls = calls
        if settings.overflow == "summarize" and calls is None:
            _log.warning("sessions.overflow is summarize, but no summaries can be made: dropping")

    async def on_request(self, call: Call) -> None:
        session_id = call.headers.get(SESSION_HEADER)
        if session_id is None:
            return
        if not _ID.fullmatch(session_id):
            raise InvalidRequest(
                f"{SESSION_HEADER}: 1 to 128 characters of letters, digits and . _ : -"
            )
        assert call.tenant is not None, "authentication runs first"
        messages = call.body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("messages: a session request sends its new turn(s)")
        tenant = call.tenant.name
        settings = self._settings
        wait = settings.lock_wait_seconds if settings.on_busy == "wait" else 0.0
        lock = self._store.lock(tenant, session_id, wait=wait)
        try:
            await lock.__aenter__()
        except SessionBusy:
            raise SessionTurnConflict(
                f"Another request of session {session_id!r} is in progress; retry when it ends."
            ) from None
        try:
            session = await self._store.load(tenant, session_id)
            body = dict(call.body)
            own_system = call.body.get("system")
            if own_system is None and session is not None and session.system is not None:
                body["system"] = unmarked_content(session.system)
            sent = await self._fit(call, body, session, messages)
        except BaseException:
            await lock.__aexit__(None, None, None)
            raise
        body["messages"] = sent.messages
        call.set_body(body)
        call.state[DROPPED] = sent.dropped
        call.state[TURN] = _Turn(
            store=self._store,
            tenant=tenant,
            session_id=session_id,
            version=sent.version,
            history=sent.history,
            system=own_system,
            ttl_seconds=call.tenant.settings.session_ttl_seconds or settings.ttl_seconds,
            lock=lock,
        )

    async def _fit(
        self,
        call: Call,
        body: dict[str, Any],
        session: Session | None,
        messages: list[dict[str, Any]],
    ) -> _Sent:
        """The history that fits with the new turn(s), the rest dropped or summarised."""
        history = unmarked_messages(session.messages) if session is not None else []
        version = session.version if session is not None else 0
        settings = self._settings
        summarize = settings.overflow == "summarize" and self._calls is not None
        context = settings.context_tokens or context_window(
            call.model, beta=call.headers.get("anthropic-beta")
        )
        max_tokens = body.get("max_tokens")

        output = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0
        step = int(max(context - output, 0) * settings.overflow_step)

        def fit_to(history: list[dict[str, Any]], reserve: int = 0) -> Fitted:
            return fit(
                history,
                messages,
                system=body.get("system"),
                tools=body.get("tools"),
                max_tokens=output,
                context_tokens=context,
                reserve=reserve,
                step=step,
            )

        fitted = fit_to(history)
        if fitted.dropped == 0 or not summarize or session is None:
            return _sent(fitted, messages, fitted.dropped, version)
        try:
            roomy = fit_to(history, 2 * settings.summary_tokens + _SUMMARY_FRAMING)
        except InvalidRequest:  # no room for a summary beside the new turn
            return _sent(fitted, messages, fitted.dropped, version)
        summary = await self._summarize(call, history[: roomy.dropped], context)
        if not summary:
            return _sent(fitted, messages, fitted.dropped, version)
        kept = [*summary_turn(summary), *history[roomy.dropped :]]
        again = fit_to(kept)  # the summary as written, counted
        try:
            version = await self._store.replace(
                session.tenant, session.session_id, kept, expected_version=version
            )
        except SessionConflict:
            _log.warning("session %s changed; its summary was not stored", session.session_id)
        # The summary turn is two messages; past it, more of the history is left out.
        return _sent(again, messages, roomy.dropped + max(again.dropped - 2, 0), version)

    async def _summarize(self, call: Call, dropped: list[dict[str, Any]], context: int) -> str:
        """The model's summary of ``dropped`` ('' when it could not be made: they are
        dropped then, and the request goes on)."""
        assert self._calls is not None
        body = summary_request(
            dropped,
            model=call.model or "",
            max_tokens=self._settings.summary_tokens,
            context_tokens=context,
        )
        try:
            return summary_text(await self._calls.message(call.subcall(body)))
        except GatewayError as exc:
            _log.warning("summarising session turns failed (%s); they are dropped", exc)
            return ""

    def on_finish(self, call: Call, outcome: Outcome) -> None:
        """The call is over: a turn not stored by now never will be; free the session."""
        turn = call.state.get(TURN)
        if turn is not None and call.generation is None:
            turn.release_soon()


def _sent(fitted: Fitted, messages: list[dict[str, Any]], dropped: int, version: int) -> _Sent:
    history = len(fitted.messages) - len(messages)
    return _Sent(fitted.messages, history, dropped, version)


class SessionSave:
    """The ``session_save`` stage: captures the answer, stores the turn before its end."""

    name = "session_save"
    routes = frozenset({Route.MESSAGES})

    async def on_request(self, call: Call) -> None:
        """Nothing on the way up: ``session_load`` did it, before redaction."""

    def wants_message(self, call: Call) -> bool:
        return TURN in call.state

    def on_message(self, call: Call, message: dict[str, Any]) -> dict[str, Any]:
        turn = call.state.get(TURN)
        if turn is not None:
            turn.answer = {"role": "assistant", "content": message.get("content", [])}
        return message

    async def settle(self, call: Call) -> None:
        turn = call.state.get(TURN)
        if turn is not None:
            await turn.commit(call)

    def event_filter(self, call: Call) -> EventFilter | None:
        turn = call.state.get(TURN)
        return None if turn is None else _Capture(turn, call)


class _Capture:
    """A stream's events folded into the answer to store; nothing is held back."""

    def __init__(self, turn: _Turn, call: Call) -> None:
        self._turn = turn
        self._call = call
        self._answer = Accumulator()
        self._failed = False

    def on_events(self, events: list[Event]) -> list[Event]:
        if not self._failed:
            try:
                self._answer.feed(events)
            except StreamFailed:
                self._failed = True  # the answer ends with an error: nothing is stored
                self._turn.release_soon()
        return events

    def flush(self) -> list[Event]:
        self._turn.release_soon()  # ended early: nothing to store
        return []

    async def settle(self) -> None:
        message = self._answer.message
        if self._failed or message is None:
            await self._turn.release()
            return
        self._turn.answer = {"role": "assistant", "content": message.get("content", [])}
        with contextlib.suppress(GatewayError):
            await self._turn.commit(self._call)
