"""Answers in this process's memory: LRU bounded by bytes, each with its own expiry."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Self

from claude_proxy.response_cache.base import Entry
from claude_proxy.response_cache.settings import ResponseCacheSettings

__all__ = ["ENTRY_OVERHEAD", "MemoryResponseCache"]

# What one entry costs beyond its answer's bytes and its key's characters: the objects
# that hold them (bytes and str headers, the Entry and its tuple, its places in the LRU
# order and in its TTL's order): 400-401 bytes, measured with tracemalloc over 100,000
# entries of 200 and 2,000 bytes on CPython 3.11. Without it, 200-byte answers took 2.5x
# the bytes counted.
ENTRY_OVERHEAD = 400


class MemoryResponseCache:
    """At most ``max_bytes`` of answers; a put beyond it drops the least recently used.

    ``bytes_held`` counts each entry as its answer, its key and ``ENTRY_OVERHEAD``. Every
    put first drops every entry that has expired, wherever it sits in the LRU order, so a
    live entry is never dropped for room an expired one holds.
    """

    def __init__(
        self, settings: ResponseCacheSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_bytes = settings.max_bytes
        self._max_entry_bytes = settings.max_entry_bytes
        self._clock = clock
        # key -> (entry, expires, ttl), least recently used first.
        self._entries: OrderedDict[str, tuple[Entry, float, float]] = OrderedDict()
        # The keys of each TTL in the order they were put, which for one TTL is the order
        # they expire in: the expired ones are found at the heads. TTLs are the tenants'
        # ttl_seconds, a handful, so a put looks at a handful of heads.
        self._by_ttl: dict[float, OrderedDict[str, None]] = {}
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
        entry, expires, _ = found
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: Entry, ttl_seconds: float) -> bool:
        if entry.size > self._max_entry_bytes or _cost(key, entry) > self._max_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        now = self._clock()
        self._drop_expired(now)
        self._entries[key] = (entry, now + ttl_seconds, ttl_seconds)
        self._by_ttl.setdefault(ttl_seconds, OrderedDict())[key] = None
        self._bytes += _cost(key, entry)
        while self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    async def close(self) -> None:
        self._entries.clear()
        self._by_ttl.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        entry, _, ttl = self._entries.pop(key)
        self._bytes -= _cost(key, entry)
        keys = self._by_ttl[ttl]
        del keys[key]
        if not keys:
            del self._by_ttl[ttl]

    def _drop_expired(self, now: float) -> None:
        for keys in list(self._by_ttl.values()):
            while keys:
                key = next(iter(keys))
                if self._entries[key][1] > now:
                    break
                self._drop(key)


def _cost(key: str, entry: Entry) -> int:
    return entry.size + len(key) + ENTRY_OVERHEAD
