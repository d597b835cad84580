"""Answers in this process's memory: LRU bounded by bytes, each with its own expiry."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Self

from claude_proxy.response_cache.base import Entry
from claude_proxy.response_cache.settings import ResponseCacheSettings

__all__ = ["MemoryResponseCache"]


class MemoryResponseCache:
    """At most ``max_bytes`` of answers; a put beyond it drops the least recently used.

    An expired entry is dropped when it is read, or when room is needed (those at the
    cold end first): until then it still counts in ``bytes_held``.
    """

    def __init__(
        self, settings: ResponseCacheSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_bytes = settings.max_bytes
        self._max_entry_bytes = settings.max_entry_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Entry, float]] = OrderedDict()
        self._bytes = 0

    @classmethod
    async def open(
        cls,
        url: str,
        settings: ResponseCacheSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Self:
        return cls(settings, clock=clock)

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        entry, expires = found
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: Entry, ttl_seconds: float) -> bool:
        if entry.size > self._max_entry_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        now = self._clock()
        self._drop_expired_cold(now)
        self._entries[key] = (entry, now + ttl_seconds)
        self._bytes += entry.size
        while self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        entry, _ = self._entries.pop(key)
        self._bytes -= entry.size

    def _drop_expired_cold(self, now: float) -> None:
        # Only from the cold end: a constant cost per put, and what sits there unread is
        # what has most likely expired.
        while self._entries:
            key, (_, expires) = next(iter(self._entries.items()))
            if expires > now:
                return
            self._drop(key)
