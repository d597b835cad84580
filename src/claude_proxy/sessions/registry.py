"""Choose the session store from its URL; backends (and their drivers) are imported lazily."""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit

from claude_proxy.sessions.base import SessionSettings, SessionStore
from claude_proxy.sessions.cache import CachedStore
from claude_proxy.state.backends import load_backend

__all__ = ["BACKENDS", "open_store"]

# URL scheme -> ("module:class", the extra that installs its driver). asyncpg and redis-py
# are imported only when a postgresql or redis URL is configured.
BACKENDS = {
    "memory": ("claude_proxy.sessions.memory:MemoryStore", ""),
    "sqlite": ("claude_proxy.sessions.sqlite:SqliteStore", ""),
    "postgresql": ("claude_proxy.sessions.postgres:PostgresStore", "postgres"),
    "postgres": ("claude_proxy.sessions.postgres:PostgresStore", "postgres"),
    "redis": ("claude_proxy.sessions.redis:RedisStore", "redis"),
    "rediss": ("claude_proxy.sessions.redis:RedisStore", "redis"),
    "unix": ("claude_proxy.sessions.redis:RedisStore", "redis"),
}


async def open_store(url: str, settings: SessionSettings) -> SessionStore:
    """The store for ``url`` (usually ``settings.url``), started; close it later.

    The schema is created (SQLite, PostgreSQL) and the store reached once, so that a store
    that is down fails at start-up with ``StateUnavailable``. A shared store gets an LRU
    cache of ``settings.cache_size`` sessions in front (``memory://`` needs none).
    """
    scheme = urlsplit(url).scheme
    if scheme not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown session store scheme {scheme!r}; use one of {known}")
    target, extra = BACKENDS[scheme]
    backend = load_backend({scheme: target}, scheme, extra=extra, what="sessions at")
    store = cast(SessionStore, await backend.open(url, settings))
    if scheme == "memory" or settings.cache_size == 0:
        return store
    return CachedStore(
        store,
        settings.cache_size,
        settings.cache_ttl_seconds,
        retention=settings.ttl_seconds,
        verify=settings.cache_verify,
    )
