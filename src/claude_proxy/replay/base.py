"""The replay-log contract: what the gateway asks of a backend that keeps a stream's events.

A replay log holds the SSE events of one streamed response so that a client whose
connection dropped can read them again from where it stopped (``Last-Event-ID``) and then
follow the rest live. One replica writes a stream (the one running its upstream call);
any replica may read it.

Exceptions::

    GatewayError
    ├── NotFound
    │   └── StreamNotFound   404: unknown, expired or evicted stream
    ├── PermissionDenied     403: another tenant's stream (raised by ``require_owner``)
    └── UpstreamUnavailable
        └── StreamLost       502: the stream went away before it finished (evicted,
                             expired, or its writer stopped); raised by ``read``
    StateUnavailable         503: Redis failed (from ``claude_proxy.state``)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from claude_proxy.errors import NotFound, PermissionDenied, UpstreamUnavailable

__all__ = [
    "ReplayLog",
    "ReplaySettings",
    "StreamLost",
    "StreamNotFound",
    "require_owner",
]


class ReplaySettings(BaseModel):
    """Tuning of a replay log; the backend itself is chosen by the state URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl_seconds: float = Field(default=600.0, gt=0)
    """A stream is forgotten this long after its last write (append, finish)."""
    max_streams: int = Field(default=10_000, ge=1)
    """Memory backend: at most this many streams (finished ones are evicted first)."""
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Memory backend: at most this many bytes of event data over all streams."""
    key_prefix: str = "claude-proxy:replay:"
    """Redis backend: every key starts with this."""
    lease_seconds: float = Field(default=10.0, gt=0)
    """Redis backend: a writer or reader not heard from for this long counts as gone."""
    block_seconds: float = Field(default=1.0, gt=0)
    """Redis backend: how long a live reader blocks before it checks the writer is alive."""
    poll_seconds: float = Field(default=0.1, gt=0)
    """Redis backend: how often ``wait_for_reader``/``wait_abandoned`` look for readers."""
    max_live_readers: int = Field(default=256, ge=1)
    """Redis backend: connections for blocked live readers (one each) on this replica."""


class StreamNotFound(NotFound):
    """No such stream: never created, expired, or evicted."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"No resumable stream {stream_id!r}: unknown or expired.")
        self.stream_id = stream_id


class StreamLost(UpstreamUnavailable):
    """The stream went away before it finished; its remaining events will never come."""

    def __init__(self, stream_id: str, why: str) -> None:
        super().__init__(f"The stream {stream_id!r} ended before it finished: {why}.")
        self.stream_id = stream_id


class ReplayLog(Protocol):
    """The events of streamed responses, kept for a while so that they can be read again.

    Sequence numbers start at 1 and have no gaps. ``read`` yields every event after
    ``after`` exactly once and in order, then follows the stream live until it finishes,
    however appends race with the reader.
    """

    async def create(self, stream_id: str, tenant: str) -> None:
        """Start a stream owned by ``tenant``; this replica becomes its only writer.
        Returns once every replica can find it."""

    def begin(self, stream_id: str, tenant: str) -> None:
        """Start a stream as ``create`` does, without waiting for the shared log to have
        it: it goes there with this replica's next writes. A replica asked for it before
        then waits for it while its id is young (``ids.stream_made_at``). Raises
        ``StateUnavailable`` while the log is known to be down."""

    async def extend(
        self, stream_id: str, events: Sequence[bytes], counts: Sequence[int] | None = None
    ) -> int:
        """Add events (their raw bytes, no ``id:`` line); return the first one's sequence
        number (the others follow it without a gap).

        ``counts``: how many events each item holds, when some hold a *run* of several
        (whole events one after the other, each ending with its blank line and holding no
        other: split on blank lines, a run gives its events back); None: one event each.
        The caller knows them: counting blank lines again cost a scan of every run.
        Sequence numbers count events, and ``read`` yields them one by one.

        Cheap: it does not wait for a remote store (Redis writes are batched in the
        background, in order, one entry per batch). Raises ``StreamNotFound`` once the
        stream is gone (finished, evicted, expired) and ``StateUnavailable`` if an earlier
        write failed.
        """

    async def finish(self, stream_id: str) -> None:
        """Mark the stream complete (after its last events); readers end. Idempotent."""

    async def owner(self, stream_id: str) -> str | None:
        """The tenant that created the stream, or None if it is unknown or expired."""

    async def final_seq(self, stream_id: str) -> int | None:
        """The sequence number of a finished stream's last event (0: it had none); None
        while it is still being written, or when it is unknown."""

    def read(self, stream_id: str, after: int = 0) -> AsyncGenerator[tuple[int, bytes], None]:
        """``(seq, data)`` for every event after ``after``, then live ones until finish.

        Raises ``StreamNotFound`` (on the first iteration) for an unknown stream and
        ``StreamLost`` if the stream goes away before it finishes. While iterating, the
        reader counts as attached (see ``wait_for_reader``); close the iterator
        (``contextlib.aclosing``) when the client goes away so that it detaches at once.
        """

    async def readers(self, stream_id: str) -> int:
        """How many readers (on any replica) are attached to the stream now."""

    async def wait_for_reader(self, stream_id: str, grace: float) -> bool:
        """True as soon as a reader is attached (now or within ``grace`` seconds)."""

    async def wait_abandoned(self, stream_id: str, grace: float) -> bool:
        """Wait until nobody can use the stream any more; say whether to stop generating.

        Call it on a stream this replica created, once its own client has gone away.
        True: no reader has been attached for ``grace`` seconds in a row, or the stream
        was dropped (evicted, expired); the gateway should cancel the upstream call.
        False: the stream finished. A resumed reader that leaves restarts the grace.
        """

    async def close(self) -> None:
        """Release connections and background tasks; pending writes are flushed first."""


async def require_owner(log: ReplayLog, stream_id: str, tenant: str) -> None:
    """Raise ``StreamNotFound`` or ``PermissionDenied`` unless ``tenant`` owns the stream."""
    owner = await log.owner(stream_id)
    if owner is None:
        raise StreamNotFound(stream_id)
    if owner != tenant:
        raise PermissionDenied("This stream belongs to another API key's tenant.")
