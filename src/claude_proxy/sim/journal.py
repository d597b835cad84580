"""The journal: the last N request bodies that reached /v1/messages and its count_tokens.

Tests read it in-process through ``app[JOURNAL]`` (the same object as the state's
``journal``) to see exactly what a gateway forwarded; ``GET /sim/journal`` serves it as JSON
for out-of-process callers and ``DELETE /sim/journal`` empties it. Off (capacity 0) unless
``SimSettings(journal=N)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

__all__ = ["JOURNAL", "Journal", "JournalEntry"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One request body as received: the bytes, and their JSON (None if not JSON)."""

    path: str  # "/v1/messages" or "/v1/messages/count_tokens"
    request_id: str  # the simulator's request-id header of the answer
    raw: bytes
    body: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "request_id": self.request_id,
            # JSON has no bytes: bodies are UTF-8, anything else shows as U+FFFD.
            "raw": self.raw.decode("utf-8", errors="replace"),
            "body": self.body,
        }


class Journal:
    """A bounded, oldest-first record of request bodies; capacity 0 keeps nothing."""

    __slots__ = ("_entries",)

    def __init__(self, capacity: int) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._entries.maxlen or 0

    def record(self, path: str, request_id: str, raw: bytes) -> None:
        if not self.capacity:
            return  # off: not even the parse is paid
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self._entries.append(JournalEntry(path, request_id, raw, body))

    def clear(self) -> None:
        self._entries.clear()

    @property
    def entries(self) -> list[JournalEntry]:
        return list(self._entries)

    @property
    def last(self) -> JournalEntry | None:
        return self._entries[-1] if self._entries else None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(list(self._entries))

    def to_json(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "entries": [e.to_json() for e in self._entries]}


JOURNAL = web.AppKey("sim_journal", Journal)
