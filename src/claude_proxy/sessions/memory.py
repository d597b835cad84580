"""Sessions in this process's memory: for tests and single-process demos.

Nothing is shared with other processes and nothing survives a restart. Messages are
kept as encoded JSON, so a caller never holds a reference into the store.
"""

from __future__ import annotations

import builtins
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Self

from claude_proxy.sessions.base import Session, SessionConflict, SessionInfo, SessionSettings
from claude_proxy.sessions.codec import decode_messages, decode_value, encode_messages, encode_value
from claude_proxy.sessions.leases import Leases

__all__ = ["MemoryStore"]

SWEEP_SECONDS = 60.0  # expired sessions nobody reads again are dropped this often


@dataclass(slots=True)
class _Entry:
    system: bytes | None
    parts: list[bytes]
    version: int
    created: float
    updated: float
    expires: float | None


class MemoryStore:
    """A dict of sessions keyed by (tenant, session id); expiry by the wall clock."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self._sessions: dict[tuple[str, str], _Entry] = {}
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}
        self._locks = Leases(self)
        self._swept_at = time.monotonic()

    @classmethod
    async def open(cls, url: str, settings: SessionSettings) -> Self:
        return cls(settings)

    def _live(self, key: tuple[str, str], now: float) -> _Entry | None:
        entry = self._sessions.get(key)
        if entry is not None and entry.expires is not None and entry.expires <= now:
            del self._sessions[key]
            return None
        return entry

    async def load(self, tenant: str, session_id: str) -> Session | None:
        entry = self._live((tenant, session_id), time.time())
        if entry is None:
            return None
        system = None if entry.system is None else decode_value(entry.system)
        return Session(
            tenant=tenant,
            session_id=session_id,
            system=system,
            messages=decode_messages(entry.parts),
            version=entry.version,
            created=entry.created,
            updated=entry.updated,
        )

    async def version(self, tenant: str, session_id: str) -> int:
        entry = self._live((tenant, session_id), time.time())
        return 0 if entry is None else entry.version

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
        parts = encode_messages(messages)
        system_json = None if system is None else encode_value(system)
        now = time.time()
        entry = self._checked((tenant, session_id), expected_version, now)
        ttl = ttl_seconds if ttl_seconds is not None else self.settings.ttl_seconds
        expires = None if ttl is None else now + ttl
        if entry is None:
            entry = _Entry(system_json, parts, 1, now, now, expires)
            self._sessions[tenant, session_id] = entry
        else:
            entry.parts.extend(parts)
            entry.version += 1
            entry.updated = now
            entry.expires = expires
            if system_json is not None:
                entry.system = system_json
        self._sweep()
        return entry.version

    async def replace(
        self,
        tenant: str,
        session_id: str,
        messages: builtins.list[dict[str, Any]],
        *,
        expected_version: int,
    ) -> int:
        parts = encode_messages(messages)
        now = time.time()
        entry = self._checked((tenant, session_id), expected_version, now)
        if entry is None:
            ttl = self.settings.ttl_seconds
            entry = _Entry(None, parts, 1, now, now, None if ttl is None else now + ttl)
            self._sessions[tenant, session_id] = entry
        else:
            entry.parts = parts
            entry.version += 1
            entry.updated = now
        return entry.version

    def _checked(self, key: tuple[str, str], expected: int, now: float) -> _Entry | None:
        entry = self._live(key, now)
        version = 0 if entry is None else entry.version
        if version != expected:
            raise SessionConflict(key[1], expected, version)
        return entry

    async def delete(self, tenant: str, session_id: str) -> bool:
        existed = self._live((tenant, session_id), time.time()) is not None
        self._sessions.pop((tenant, session_id), None)
        return existed

    def lock(
        self, tenant: str, session_id: str, *, wait: float, lease: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        return self._locks.lock(tenant, session_id, wait=wait, lease=lease)

    async def try_acquire(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        now = time.monotonic()
        held = self._leases.get((tenant, session_id))
        if held is not None and held[1] > now:
            return False
        self._leases[tenant, session_id] = (token, now + lease)
        return True

    async def renew(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        held = self._leases.get((tenant, session_id))
        if held is None or held[0] != token:
            return False
        self._leases[tenant, session_id] = (token, time.monotonic() + lease)
        return True

    async def release(self, tenant: str, session_id: str, token: str) -> None:
        held = self._leases.get((tenant, session_id))
        if held is not None and held[0] == token:
            del self._leases[tenant, session_id]

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        await self._locks.close()

    def _sweep(self) -> None:
        if time.monotonic() - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = time.monotonic()
        now = time.time()
        for key in [k for k, e in self._sessions.items() if e.expires and e.expires <= now]:
            del self._sessions[key]

    async def list(
        self, tenant: str, *, limit: int = 100, after: str | None = None
    ) -> builtins.list[SessionInfo]:
        now = time.time()
        ids = sorted(
            session_id
            for (owner, session_id) in self._sessions
            if owner == tenant and (after is None or session_id > after)
        )
        infos: builtins.list[SessionInfo] = []
        for session_id in ids:
            if len(infos) >= limit:
                break
            entry = self._live((tenant, session_id), now)
            if entry is not None:
                infos.append(
                    SessionInfo(session_id, len(entry.parts), entry.created, entry.updated)
                )
        return infos
