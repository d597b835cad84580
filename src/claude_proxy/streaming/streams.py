"""The gateway's streams: the replay log, the generations running now, and who owns each.

A stream is owned by the tenant that started it; only that tenant may resume it.
With no tenants configured everyone is the one open tenant, so the owner is the
digest of the credential the client sent: another API key cannot resume it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Mapping, Sequence

from claude_proxy.config import StreamSettings
from claude_proxy.observability import Metrics
from claude_proxy.replay import ReplayLog, ReplaySettings, new_stream_id, open_replay_log
from claude_proxy.state import StateUnavailable
from claude_proxy.streaming.generation import (
    AnswerSource,
    EventFilter,
    Generation,
    Sink,
    log_failure,
)
from claude_proxy.tenancy import Tenant

__all__ = ["Streams", "stream_owner"]

_log = logging.getLogger("claude_proxy.streams")


def stream_owner(tenant: Tenant, headers: Mapping[str, str], open_access: bool) -> str:
    """Who may resume a stream started with these request headers."""
    if not open_access:
        return tenant.name
    return _credential_owner(headers.get("x-api-key") or headers.get("authorization") or "")


@functools.lru_cache(maxsize=1024)
def _credential_owner(credential: str) -> str:
    # Cached: a gateway sees few distinct credentials, and a digest per stream adds up.
    return "key:" + hashlib.sha256(credential.encode()).hexdigest()[:32]


class Streams:
    """Live generations and the replay log they write; drained on shutdown."""

    def __init__(
        self, settings: StreamSettings, replay: ReplayLog | None, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.replay = replay
        self._metrics = metrics
        self._running: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, settings: StreamSettings, replay: ReplaySettings, state_url: str, metrics: Metrics
    ) -> Streams:
        """With ``resumable`` off there is no replay log (and nothing to resume)."""
        log = await open_replay_log(state_url, replay) if settings.resumable else None
        return cls(settings, log, metrics)

    @property
    def running(self) -> int:
        return len(self._running)

    def new_stream(self, owner: str) -> str | None:
        """A new resumable stream's id, or None when streams are not kept (or Redis is down).

        Begun, not waited for: on Redis its keys go with the stream's first writes, and
        another replica asked for it sooner waits for them (see ``ReplayLog.begin``).
        """
        if self.replay is None:
            return None
        stream_id = new_stream_id()
        try:
            self.replay.begin(stream_id, owner)
        except StateUnavailable as exc:
            # Availability over resumability: the stream still flows, without an id.
            # The backend logs the outage once; this would be a line per stream.
            _log.debug("replay log unavailable; stream not resumable: %s", exc)
            return None
        return stream_id

    def generation(
        self,
        answer: AnswerSource,
        sink: Sink,
        *,
        stream_id: str | None = None,
        filters: Sequence[EventFilter] = (),
    ) -> Generation:
        """A generation for ``answer``, kept in the replay log when it has a ``stream_id``.

        Start it with ``serve``; if it never starts, ``abandon`` it so that the answer
        is released.
        """
        return Generation(
            answer=answer,
            sink=sink,
            metrics=self._metrics,
            filters=filters,
            replay=self.replay if stream_id is not None else None,
            stream_id=stream_id or "",
            resume_grace=self.settings.resume_grace,
        )

    def start(self, generation: Generation) -> None:
        task = generation.start()
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(log_failure)

    async def serve(self, generation: Generation) -> None:
        """Start ``generation``; return once its client has all of it, or has gone."""
        self.start(generation)
        try:
            # Shielded: the caller being cancelled (its client left) must not cancel it.
            await asyncio.shield(generation.client_done)
        except asyncio.CancelledError:
            generation.detach()
            raise

    async def drain(self, seconds: float) -> None:
        """Let running generations finish for up to ``seconds``, then cancel them."""
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    async def close(self) -> None:
        if self.replay is not None:
            await self.replay.close()
