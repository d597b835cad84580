"""An LRU cache of sessions in front of any store, so a busy conversation is read once.

A session is read before every turn and written after it; with the cache the write
keeps the cached copy current, and the next turn's read never reaches the store.

Another replica (or worker process) may write a session this cache holds. With
``verify`` (the default) a hit first asks the store for the session's version, one small
read instead of the whole history, and a copy that is behind is read again: the turns sent
upstream are the store's, whichever replica wrote them. Without it the copy may be behind
for up to ``ttl`` seconds (fine for a single process). Either way a copy can never be
written over: an append or replace carries its expected version, the store refuses a
stale one with ``SessionConflict``, and the cache drops its copy before the conflict
reaches the caller, so the caller's retry reads the store.

After a write the cache updates its copy itself rather than read it back: its
``updated`` (and ``created``, for a new session) is this process's clock, within
milliseconds of what the store recorded.
"""

from __future__ import annotations

import builtins
import time
from collections import OrderedDict
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from claude_proxy.sessions.base import Session, SessionInfo, SessionStore
from claude_proxy.sessions.codec import decode_messages, decode_value, encode_messages, encode_value

__all__ = ["CachedStore"]

_Key = tuple[str, str]


@dataclass(slots=True)
class _Cached:
    system: bytes | None  # encoded, like the messages: every load hands out a fresh copy
    parts: list[bytes]
    version: int
    created: float
    updated: float
    fresh_until: float  # time.monotonic()


class CachedStore:
    """At most ``size`` sessions, each served for ``ttl`` seconds after it was last read
    from or written to the store, and never past its ``retention`` (the store's
    ``ttl_seconds``, or the ``ttl_seconds`` of this cache's last append of it)."""

    def __init__(
        self,
        inner: SessionStore,
        size: int,
        ttl: float,
        *,
        retention: float | None = None,
        verify: bool = True,
    ) -> None:
        self.inner = inner
        self._size = size
        self._ttl = ttl
        self._verify = verify
        self._retention = retention
        self._entries: OrderedDict[_Key, _Cached] = OrderedDict()
        # Bumped before and after every write: a load that overlapped one may have read
        # the state before it, and must not put that into the cache.
        self._writes = 0

    async def load(self, tenant: str, session_id: str) -> Session | None:
        key = (tenant, session_id)
        writes = self._writes
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.fresh_until > time.monotonic()
            and (not self._verify or await self._still_current(key, entry, writes))
        ):
            self._entries.move_to_end(key)
            return _session(key, entry)
        if self._entries.get(key) is entry is not None:
            del self._entries[key]
        writes = self._writes
        session = await self.inner.load(tenant, session_id)
        if session is not None and writes == self._writes:
            left = None if self._retention is None else session.updated + self._retention
            self._put(key, self._cached(session, None if left is None else left - time.time()))
        return session

    async def version(self, tenant: str, session_id: str) -> int:
        return await self.inner.version(tenant, session_id)

    async def _still_current(self, key: _Key, entry: _Cached, writes: int) -> bool:
        """Whether the store's version is the cached copy's (and no write of this process
        overlapped the question, which would make the answer ambiguous)."""
        version = await self.inner.version(*key)
        return version == entry.version and writes == self._writes

    async def append(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
        system: Any | None = None,
        ttl_seconds: float | None = None,
    ) -> int:
        key = (tenant, session_id)
        entry = self._start_write(key)
        try:
            version = await self.inner.append(
                tenant,
                session_id,
                messages,
                expected_version=expected_version,
                system=system,
                ttl_seconds=ttl_seconds,
            )
        finally:
            self._writes += 1
        now = time.time()
        if expected_version == 0:
            entry = _Cached(None, [], 0, now, now, 0.0)
        if entry is not None and entry.version == expected_version:
            entry.parts.extend(_compact(encode_messages(messages)))
            if system is not None:
                entry.system = encode_value(system)
            entry.version = version
            entry.updated = now
            retention = ttl_seconds if ttl_seconds is not None else self._retention
            entry.fresh_until = self._fresh_until(retention)
            self._put(key, entry)
        return version

    async def replace(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
    ) -> int:
        key = (tenant, session_id)
        entry = self._start_write(key)
        try:
            version = await self.inner.replace(
                tenant, session_id, messages, expected_version=expected_version
            )
        finally:
            self._writes += 1
        now = time.time()
        if expected_version == 0:
            entry = _Cached(None, [], 0, now, now, self._fresh_until(self._retention))
        if entry is not None and entry.version == expected_version:
            entry.parts = _compact(encode_messages(messages))
            entry.version = version
            entry.updated = now  # the expiry is kept: so is fresh_until
            self._put(key, entry)
        return version

    async def delete(self, tenant: str, session_id: str) -> bool:
        self._start_write((tenant, session_id))
        try:
            return await self.inner.delete(tenant, session_id)
        finally:
            self._writes += 1

    def lock(
        self, tenant: str, session_id: str, *, wait: float, lease: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        return self.inner.lock(tenant, session_id, wait=wait, lease=lease)

    async def healthy(self) -> bool:
        return await self.inner.healthy()

    async def close(self) -> None:
        self._entries.clear()
        await self.inner.close()

    def _start_write(self, key: _Key) -> _Cached | None:
        """Take the entry out while the write runs: whatever happens to the write (a
        conflict, an error, a cancel), the entry is back only if the write succeeded."""
        self._writes += 1
        entry = self._entries.pop(key, None)
        if entry is not None and entry.fresh_until <= time.monotonic():
            return None
        return entry

    def _put(self, key: _Key, entry: _Cached) -> None:
        current = self._entries.get(key)
        if current is not None and current.version > entry.version:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def _fresh_until(self, retention: float | None) -> float:
        ttl = self._ttl if retention is None else min(self._ttl, retention)
        return time.monotonic() + ttl

    def _cached(self, session: Session, retention: float | None) -> _Cached:
        return _Cached(
            system=None if session.system is None else encode_value(session.system),
            parts=_compact(encode_messages(session.messages)),
            version=session.version,
            created=session.created,
            updated=session.updated,
            fresh_until=self._fresh_until(retention),
        )

    async def list(
        self, tenant: str, *, limit: int = 100, after: str | None = None
    ) -> builtins.list[SessionInfo]:
        return await self.inner.list(tenant, limit=limit, after=after)


def _session(key: _Key, entry: _Cached) -> Session:
    return Session(
        tenant=key[0],
        session_id=key[1],
        system=None if entry.system is None else decode_value(entry.system),
        messages=decode_messages(entry.parts),
        version=entry.version,
        created=entry.created,
        updated=entry.updated,
    )


def _compact(parts: list[bytes]) -> list[bytes]:
    """Exact-size copies of encoded messages to keep: orjson's output holds a 4 KB
    allocation however short the JSON (measured: 4,098 bytes for a 230-byte message,
    270 for its copy), and the cache keeps its parts for minutes."""
    return [bytes(memoryview(part)) for part in parts]
