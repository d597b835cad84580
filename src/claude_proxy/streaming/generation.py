"""One streamed answer, generated in a task of its own: answer stages, replay log, client.

The generation outlives its client's connection. When the client goes away, it
keeps the upstream call running for ``resume_grace`` seconds so that the client
can resume from the replay log (``GET /v1/streams/{id}``); once nobody has read
the stream for that long, it cancels the upstream call. The answer (and with it the
admission slot) is closed when the generation ends, since the slot is in use until then.

Each batch of events goes through the answer stages' filters first, then into the
replay log, then to the live client: a resumed stream replays exactly what the client
was sent, and the client never has an event the log lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Protocol

from claude_proxy.observability import Metrics
from claude_proxy.replay import ReplayLog, StreamNotFound
from claude_proxy.state import StateUnavailable
from claude_proxy.streaming.relay import error_event
from claude_proxy.streaming.sse import Event, singles

__all__ = [
    "AnswerSource",
    "ClientGone",
    "EventFilter",
    "Generation",
    "Sink",
    "apply_filters",
    "log_failure",
    "settle",
]

_log = logging.getLogger("claude_proxy.streams")
_ENDS = frozenset({"message_stop", "error"})


class ClientGone(Exception):
    """The connection to the client is closed: nothing more can be written to it."""


class Sink(Protocol):
    """Where a live client receives its events (an SSE response, a WebSocket request)."""

    async def send(self, events: list[tuple[int, Event]]) -> None:
        """Write ``(seq, event)`` pairs in order, ``seq`` being the number of the event (of
        a run's first event; the others follow); raise ``ClientGone`` if the client is gone."""

    async def close(self, error_type: str | None) -> None:
        """The answer ended (``error_type`` is set when it ended with an error event)."""


class AnswerSource(Protocol):
    """An upstream answer as events (``pipeline.service.LiveAnswer``)."""

    # True for an answer replayed, not generated (``pipeline.service.StoredStream``: a
    # response cache hit): its gaps between tokens are not measured.
    stored: bool

    @property
    def error_type(self) -> str | None:
        """The ``error.type`` the answer ended with (None: whole, or not ended)."""

    def events(self) -> AsyncGenerator[list[Event], None]:
        """Batches of client events until the answer ends (deltas may come in runs)."""

    async def aclose(self) -> None:
        """Release what the answer holds (connection, admission slot); idempotent."""


class EventFilter(Protocol):
    """An answer stage's view of one stream (see ``pipeline.stage``)."""

    def on_events(self, events: list[Event]) -> list[Event]:
        """The events to pass on for this batch; may hold some back for a later batch."""

    def flush(self) -> list[Event]:
        """The answer is ending early (abandoned, failed): everything still held.

        A filter may also have ``async def settle(self) -> None``: awaited when the answer
        is whole, before its ``message_stop`` is sent, to finish what must be durable
        before the client sees the end (a session's turn written). See ``settle``."""


def apply_filters(filters: Sequence[EventFilter], events: list[Event]) -> list[Event]:
    """What the filters pass on of a batch; each sees the events one by one (runs split)."""
    if filters:
        events = singles(events)
    for stage in filters:
        events = stage.on_events(events)
    return events


async def settle(filters: Sequence[EventFilter]) -> None:
    """Await the ``settle`` of each filter that has one (the answer is whole)."""
    for stage in filters:
        hook = getattr(stage, "settle", None)
        if hook is not None:
            await hook()


class Generation:
    """Relays one upstream answer into the replay log and to the live client, if any."""

    def __init__(
        self,
        *,
        answer: AnswerSource,
        sink: Sink,
        metrics: Metrics,
        filters: Sequence[EventFilter] = (),
        replay: ReplayLog | None = None,
        stream_id: str = "",
        resume_grace: float = 0.0,
    ) -> None:
        self.stream_id = stream_id
        self.error_type: str | None = None
        # The whole answer (up to message_stop, or an error event) has been emitted: a
        # client that leaves now has missed nothing, and nothing is left to cancel.
        self.answered = False
        # Time to the first content event and the last one's time, on the gateway's clock.
        self.first_content: float | None = None
        self._last_content = 0.0
        self._answer = answer
        self._timed = not answer.stored
        self._filters = tuple(filters)
        self._metrics = metrics
        self._sink: Sink | None = sink
        self._replay = replay
        self._seq = 0
        self._grace = resume_grace
        self._task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.client_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def resumable(self) -> bool:
        return self._replay is not None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=f"generation {self.stream_id}")
        return self._task

    async def abandon(self) -> None:
        """It will never start: release what the answer holds, and end its replay log
        empty (a resume finds it over; its writer is not kept alive for nothing)."""
        if not self.client_done.done():
            self.client_done.set_result(None)
        self._sink = None
        try:
            await self._close_log_and_client()
        finally:
            await self._answer.aclose()

    def detach(self) -> None:
        """The client went away: keep generating for a resume, within the grace period."""
        if self._sink is None:
            return
        self._sink = None
        if not self.client_done.done():
            self.client_done.set_result(None)
        if self._task is None or self._task.done() or self.answered:
            return
        if self._replay is None or self._grace <= 0:
            self._task.cancel()
        else:
            self._watcher = asyncio.create_task(self._watch(self._replay, self._task))
            self._watcher.add_done_callback(log_failure)

    async def _run(self) -> None:
        self._metrics.stream_opened()
        try:
            async with aclosing(self._answer.events()) as batches:
                async for events in batches:
                    if self._filters:
                        events = apply_filters(self._filters, events)
                    if events:
                        if events[-1].name == "message_stop":
                            await settle(self._filters)
                        await self._emit(events)
            self.error_type = self._answer.error_type
        except asyncio.CancelledError:
            self.error_type = "client_disconnect"
            # A late resumer learns the answer is incomplete, instead of a silent end.
            with contextlib.suppress(ClientGone, StateUnavailable):
                await self._emit([*self._flush(), _abandoned_event()])
            raise
        except Exception:
            # A bug must not look like a complete answer: the SDK takes a stream that
            # just ends for a whole message.
            _log.exception("stream %s failed", self.stream_id)
            self.error_type = "api_error"
            if not self.answered:
                with contextlib.suppress(ClientGone, StateUnavailable):
                    await self._emit([*self._flush(), _failed_event()])
        finally:
            await asyncio.shield(self._end())

    def _flush(self) -> list[Event]:
        held: list[Event] = []
        for stage in self._filters:
            held = [*stage.on_events(held), *stage.flush()] if held else stage.flush()
        return held

    async def _end(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        # The upstream answer is over: its slot goes back while the end reaches the client,
        # not after. On Redis, a client's next request otherwise arrived as the release was
        # sent: its admission queued behind it, and the release's client work beside it.
        releasing = asyncio.ensure_future(self._answer.aclose())
        try:
            await self._close_log_and_client()
        finally:
            try:
                await releasing
            finally:
                self._metrics.stream_closed()  # once nothing of it is held

    async def _close_log_and_client(self) -> None:
        """The replay log's end first, then the client's: a resumer has the whole answer."""
        if self._replay is not None:
            try:
                await self._replay.finish(self.stream_id)
            except StateUnavailable as exc:
                _log.warning("replay log finish failed for %s: %s", self.stream_id, exc)
        sink = self._sink
        if sink is not None:
            with contextlib.suppress(ClientGone):
                await sink.close(self.error_type)
        if not self.client_done.done():
            self.client_done.set_result(None)

    async def _emit(self, events: list[Event]) -> None:
        now = time.perf_counter()
        gap: float | None = None
        for event in events:
            if event.name == "content_block_delta":
                if self.first_content is None:
                    self.first_content = now
                elif self._timed:
                    gap = now - self._last_content
                self._last_content = now
                break
        numbered = await self._append(events)
        # The answer's last events: message_stop, or an error event (only final ones are
        # emitted). Marked before the send, which hands the bytes to the transport and may
        # then wait to drain: a client that leaves during that wait has the whole answer.
        if events[-1].name in _ENDS:
            self.answered = True
        sink = self._sink
        if sink is not None:
            try:
                await sink.send(numbered)
            except ClientGone:
                self.answered = False
                self.detach()
        if gap is not None:  # observed once the client has the event, not before
            self._metrics.token_gap(gap)

    async def _append(self, events: list[Event]) -> list[tuple[int, Event]]:
        """Write the events to the replay log first, so that a client never has one it lacks."""
        count = events[0].count if len(events) == 1 else sum(event.count for event in events)
        first = self._seq + 1
        if self._replay is not None:
            raws = [event.raw for event in events]
            counts = None if count == len(events) else [event.count for event in events]
            try:
                first = await self._replay.extend(self.stream_id, raws, counts)
            except (StateUnavailable, StreamNotFound) as exc:
                # Availability over resumability: the live client still gets every
                # event, whether the store failed or evicted this stream's log.
                # The backend logs an outage once; a line per stream would drown it.
                _log.debug("replay log failed; %s is not resumable: %s", self.stream_id, exc)
                self._replay = None
        self._seq = first + count - 1
        numbered = []
        for event in events:
            numbered.append((first, event))
            first += event.count
        return numbered

    async def _watch(self, replay: ReplayLog, task: asyncio.Task[None]) -> None:
        try:
            abandoned = await replay.wait_abandoned(self.stream_id, self._grace)
        except StateUnavailable:
            abandoned = True  # nobody can resume without the log: stop paying for it
        if abandoned and not task.done():
            _log.info("stream %s abandoned: cancelling its upstream call", self.stream_id)
            task.cancel()


def log_failure(task: asyncio.Task[None]) -> None:
    """A background task's exception, logged: nobody awaits it, and asyncio would only say
    "Task exception was never retrieved" when it is collected, if ever."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("%s failed", task.get_name(), exc_info=exc)


def _failed_event() -> Event:
    return error_event("api_error", "Internal gateway error; the answer is incomplete.")


def _abandoned_event() -> Event:
    return error_event(
        "api_error",
        "The stream was cancelled before it finished (its client went away and did not "
        "resume, or the gateway shut down).",
    )
