"""Answers in Redis, shared by every replica: one string key per entry, with its own TTL.

Key ``{key_prefix}{tenant}:{sha256}``; value one byte (``s`` a stream's SSE bytes, ``j``
a JSON body) and the answer. Redis expires each entry itself (``SET … PX``); the total
is bounded by Redis's ``maxmemory`` (a Redis of its own for the cache, with
``allkeys-lru``, is the way to bound it without touching other shared state).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

from redis import asyncio as aioredis

from claude_proxy.response_cache.base import Entry
from claude_proxy.response_cache.settings import ResponseCacheSettings
from claude_proxy.state import StateUnavailable
from claude_proxy.state.outage import Outage
from claude_proxy.state.redis import close_within, open_redis, translate_redis_errors

__all__ = ["RedisResponseCache"]

_log = logging.getLogger("claude_proxy.response_cache")
_STREAM, _JSON = b"s", b"j"
# A lookup stands between the client and the upstream: a Redis that does not answer
# within this is passed by (the request goes upstream), not waited for.
SOCKET_TIMEOUT = 1.0


class RedisResponseCache:
    def __init__(self, settings: ResponseCacheSettings, client: aioredis.Redis) -> None:
        self._redis = client
        self._prefix = settings.key_prefix
        self._max_entry_bytes = settings.max_entry_bytes
        self._outage = Outage(_log, "the response cache's Redis")

    @classmethod
    async def open(
        cls,
        url: str,
        settings: ResponseCacheSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Self:
        """Connected (a Redis that is down fails start-up, as the other stores do);
        ``clock`` is unused: Redis expires entries by its own."""
        client = open_redis(url, socket_timeout=SOCKET_TIMEOUT, decode_responses=False)
        cache = cls(settings, client)
        try:
            with translate_redis_errors("connecting to the response cache"):
                await cache._redis.ping()
        except StateUnavailable:
            await cache.close()
            raise
        return cache

    @property
    def bytes_held(self) -> None:
        return None

    async def get(self, key: str) -> Entry | None:
        value = await self._command(
            "reading the response cache", self._redis.get(self._prefix + key)
        )
        if not value:
            return None
        return Entry(value[:1] == _STREAM, value[1:])

    async def put(self, key: str, entry: Entry, ttl_seconds: float) -> bool:
        if entry.size > self._max_entry_bytes:
            return False
        value = (_STREAM if entry.stream else _JSON) + entry.body
        ttl_ms = max(1, round(ttl_seconds * 1000))
        await self._command(
            "writing the response cache", self._redis.set(self._prefix + key, value, px=ttl_ms)
        )
        return True

    async def close(self) -> None:
        await close_within(self._redis.aclose(), "the response cache")

    async def _command(self, action: str, command: Awaitable[Any]) -> bytes | None:
        try:
            with translate_redis_errors(action):
                result = await command
        except StateUnavailable as exc:
            self._outage.failed(exc)
            raise
        self._outage.ok()
        return result if isinstance(result, bytes) else None
