"""Replay logs in this process: a list per stream, readers woken by an asyncio.Event.

An extend is a list extend plus a wake-up of readers that are waiting, if any. A run of
events is kept as it came, as one item, with the sequence number of its last event beside
it; a reader that starts inside a run splits it. Streams
expire ``ttl_seconds`` after their last write (checked on access, and in a sweep at most
every quarter TTL when streams are created). Past ``max_streams`` or ``max_bytes`` the
oldest finished streams are evicted first, then the oldest unfinished ones; the stream
being written to is never evicted by its own write.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from typing import Self

from claude_proxy.replay.base import ReplaySettings, StreamLost, StreamNotFound
from claude_proxy.streaming.sse import run_events

__all__ = ["MemoryReplayLog"]


class _Stream:
    __slots__ = (
        "_wake",
        "ends",
        "events",
        "expires",
        "finished",
        "gone",
        "readers",
        "size",
        "tenant",
    )

    def __init__(self, tenant: str, expires: float) -> None:
        self.tenant = tenant
        self.events: list[bytes] = []  # one event each, or a run of several
        self.ends: list[int] = []  # the sequence number of each item's last event
        self.size = 0
        self.expires = expires
        self.finished = False
        self.gone = False
        self.readers = 0
        self._wake: asyncio.Event | None = None

    @property
    def last(self) -> int:
        return self.ends[-1] if self.ends else 0

    def notify(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    async def changed(self) -> None:
        """Return at the next append, finish, drop, or reader attaching or leaving."""
        if self._wake is None:
            self._wake = asyncio.Event()
        await self._wake.wait()


class MemoryReplayLog:
    """The default backend; streams cannot be resumed through another process."""

    def __init__(self, settings: ReplaySettings) -> None:
        self.settings = settings
        self._streams: dict[str, _Stream] = {}  # in creation order
        self._finished: OrderedDict[str, None] = OrderedDict()  # in finish order
        self._bytes = 0
        self._next_sweep = 0.0

    @classmethod
    async def open(cls, url: str, settings: ReplaySettings) -> Self:
        return cls(settings)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._streams)

    async def create(self, stream_id: str, tenant: str) -> None:
        self.begin(stream_id, tenant)

    def begin(self, stream_id: str, tenant: str) -> None:
        if stream_id in self._streams:
            raise ValueError(f"stream {stream_id!r} exists")
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        while len(self._streams) >= self.settings.max_streams:
            self._evict_one(keep=None)
        self._streams[stream_id] = _Stream(tenant, now + self.settings.ttl_seconds)

    async def extend(
        self, stream_id: str, events: Sequence[bytes], counts: Sequence[int] | None = None
    ) -> int:
        stream = self._streams.get(stream_id)
        if stream is None or stream.finished:
            raise StreamNotFound(stream_id)
        first = stream.last + 1
        if counts is None:
            stream.ends.extend(range(first, first + len(events)))
        else:
            end = first - 1
            for count in counts:
                end += count
                stream.ends.append(end)
        size = sum(map(len, events))
        stream.events.extend(events)
        stream.size += size
        stream.expires = time.monotonic() + self.settings.ttl_seconds
        stream.notify()
        self._bytes += size
        if self._bytes > self.settings.max_bytes:
            self._shrink(keep=stream_id)
        return first

    async def finish(self, stream_id: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.finished:
            return
        stream.finished = True
        stream.expires = time.monotonic() + self.settings.ttl_seconds
        self._finished[stream_id] = None
        stream.notify()

    async def final_seq(self, stream_id: str) -> int | None:
        stream = self._live(stream_id)
        return stream.last if stream is not None and stream.finished else None

    async def owner(self, stream_id: str) -> str | None:
        stream = self._live(stream_id)
        return None if stream is None else stream.tenant

    async def read(self, stream_id: str, after: int = 0) -> AsyncGenerator[tuple[int, bytes], None]:
        stream = self._live(stream_id)
        if stream is None:
            raise StreamNotFound(stream_id)
        position = max(after, 0)  # the last event yielded
        stream.readers += 1
        stream.notify()
        try:
            while True:
                index = bisect.bisect_right(stream.ends, position)
                while index < len(stream.ends) and not stream.gone:
                    item, end = stream.events[index], stream.ends[index]
                    first = stream.ends[index - 1] + 1 if index else 1
                    index += 1
                    if end == first:
                        position = end
                        yield end, item
                        continue
                    # A run: its events from the first one not yet yielded.
                    events = run_events(item)
                    for seq in range(position + 1, end + 1):
                        position = seq
                        yield seq, events[seq - first]
                        if stream.gone:
                            break
                if stream.gone:
                    raise StreamLost(stream_id, "it was evicted or expired")
                if stream.finished:
                    return
                await self._wait_change(stream_id, stream)
        finally:
            stream.readers -= 1
            stream.notify()

    async def readers(self, stream_id: str) -> int:
        stream = self._streams.get(stream_id)
        return 0 if stream is None else stream.readers

    async def wait_for_reader(self, stream_id: str, grace: float) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None:
            return False
        try:
            async with asyncio.timeout(grace):
                while stream.readers == 0:
                    if stream.gone:
                        return False
                    await stream.changed()
        except TimeoutError:
            return False
        return True

    async def wait_abandoned(self, stream_id: str, grace: float) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None:
            return True  # dropped: nobody can resume it
        while not stream.finished:
            if stream.gone:
                return True
            if stream.readers:
                await stream.changed()
                continue
            try:
                async with asyncio.timeout(grace):
                    while not (stream.readers or stream.finished or stream.gone):
                        await stream.changed()
            except TimeoutError:
                return True
        return False

    async def close(self) -> None:
        for stream_id in list(self._streams):
            self._drop(stream_id)

    async def _wait_change(self, stream_id: str, stream: _Stream) -> None:
        """Wait for the stream to change, expiring it if its TTL passes first."""
        try:
            async with asyncio.timeout(max(stream.expires - time.monotonic(), 0.0)):
                await stream.changed()
        except TimeoutError:
            if time.monotonic() >= stream.expires:
                self._drop(stream_id)

    def _live(self, stream_id: str) -> _Stream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and time.monotonic() >= stream.expires:
            self._drop(stream_id)
            return None
        return stream

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + max(self.settings.ttl_seconds / 4, 0.01)
        for stream_id in [key for key, stream in self._streams.items() if now >= stream.expires]:
            self._drop(stream_id)

    def _shrink(self, keep: str) -> None:
        while self._bytes > self.settings.max_bytes and len(self._streams) > 1:
            self._evict_one(keep)

    def _evict_one(self, keep: str | None) -> None:
        for candidates in (self._finished, self._streams):
            for stream_id in candidates:
                if stream_id != keep:
                    self._drop(stream_id)
                    return

    def _drop(self, stream_id: str) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        self._finished.pop(stream_id, None)
        self._bytes -= stream.size
        stream.gone = True
        stream.events = []
        stream.ends = []
        stream.size = 0
        stream.notify()
