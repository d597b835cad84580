"""The response-cache contract: whole answers kept by key for a while, bounded in bytes.

An entry is one complete upstream answer: a JSON Message body, or the SSE bytes of a
stream's events up to its ``message_stop``, exactly as the upstream sent them (through
the relay). What qualifies, and the key, are the stage's business
(``pipeline.stages.response_cache``); a backend only keeps bytes.

Bounds: no backend keeps an entry over ``max_entry_bytes``. The memory backend holds at
most ``max_bytes`` in all (each entry counted with its key and bookkeeping), dropping
expired entries, then the least recently used; Redis keeps each entry with its own TTL
(``SET … PX``), and its total is Redis's ``maxmemory`` (see the README).

Exceptions: ``StateUnavailable`` when the store cannot be reached, is too slow, or
refuses a write (Redis); the stage then answers from the upstream, never fails the
request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Entry", "ResponseCache"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored answer: a stream's SSE bytes (``stream``) or a JSON Message body."""

    stream: bool
    body: bytes

    @property
    def size(self) -> int:
        return len(self.body)


class ResponseCache(Protocol):
    @property
    def bytes_held(self) -> int | None:
        """Bytes of answers this process holds (None: the store is shared, not counted here)."""

    async def get(self, key: str) -> Entry | None:
        """The entry stored under ``key`` and not expired, or None."""

    async def put(self, key: str, entry: Entry, ttl_seconds: float) -> bool:
        """Keep ``entry`` for ``ttl_seconds``; False when it is over ``max_entry_bytes``."""

    async def close(self) -> None: ...
