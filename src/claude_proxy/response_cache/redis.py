"""Answers in Redis, shared by every replica: one string key per entry, with its own TTL.

Key ``{key_prefix}{tenant}:{sha256}``; value one byte (``s`` a stream's SSE bytes, ``j``
a JSON body) and the answer. Redis expires each entry itself (``SET … PX``); the total
is bounded by Redis's ``maxmemory`` (a Redis of its own for the cache, with
``allkeys-lru``, is the way to bound it without touching other shared state).

The cache stands between the client and the upstream, and is worth less than the time
it could cost: a lookup has ``lookup_timeout`` and a store ``store_timeout`` (both short).
A command that fails to get through (refused, cut, or over its deadline) flags an
outage; while it is flagged every lookup and store is passed by at once, and a PING in
the background now and then (sooner early in the outage, then further apart) says when
Redis answers again. A write Redis refuses (``OOM``, ``READONLY``) is not an outage:
Redis answered, and lookups still work; the stage counts and logs those.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

from redis import asyncio as aioredis
from redis.exceptions import ResponseError

from claude_proxy.response_cache.base import Entry
from claude_proxy.response_cache.failures import StoreFailures
from claude_proxy.response_cache.settings import ResponseCacheSettings
from claude_proxy.state import StateUnavailable
from claude_proxy.state.outage import Outage
from claude_proxy.state.redis import close_within, open_redis, translate_redis_errors
from claude_proxy.state.tasks import stop_tasks

__all__ = ["RedisResponseCache"]

_log = logging.getLogger("claude_proxy.response_cache")
_STREAM, _JSON = b"s", b"j"
# Connecting at start-up, and a backstop under the deadlines of each command.
SOCKET_TIMEOUT = 1.0
# While an outage is flagged: seconds between PINGs, from the first (a blip is over
# soon) to the cap (a long outage is not polled hard by every replica).
PROBE_FIRST = 0.25
PROBE_CAP = 5.0
STOP_SECONDS = 0.5


class RedisResponseCache:
    def __init__(self, settings: ResponseCacheSettings, client: aioredis.Redis) -> None:
        self._redis = client
        self._prefix = settings.key_prefix
        self._max_entry_bytes = settings.max_entry_bytes
        self._lookup_timeout = settings.lookup_timeout
        self._store_timeout = settings.store_timeout
        self._outage = Outage(_log, "the response cache's Redis")
        self._refusals = StoreFailures(_log)
        self._probe: asyncio.Task[None] | None = None
        self._probe_at = 0.0

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
            "reading the response cache",
            self._lookup_timeout,
            lambda: self._redis.get(self._prefix + key),
        )
        if not isinstance(value, bytes) or not value:
            return None
        return Entry(value[:1] == _STREAM, value[1:])

    async def put(self, key: str, entry: Entry, ttl_seconds: float) -> bool:
        if entry.size > self._max_entry_bytes:
            return False
        value = (_STREAM if entry.stream else _JSON) + entry.body
        ttl_ms = max(1, round(ttl_seconds * 1000))
        try:
            await self._command(
                "writing the response cache",
                self._store_timeout,
                lambda: self._redis.set(self._prefix + key, value, px=ttl_ms),
            )
        except StateUnavailable as exc:
            if isinstance(exc.__cause__, ResponseError):  # refused (OOM, READONLY): no
                self._refusals.failed(exc)  # outage, and it may go on: counted
            raise
        return True

    async def close(self) -> None:
        if self._probe is not None:
            await stop_tasks([self._probe], deadline=STOP_SECONDS)
        await close_within(self._redis.aclose(), "the response cache")

    async def _command(
        self, action: str, deadline: float, command: Callable[[], Awaitable[Any]]
    ) -> Any:
        if self._outage.down:
            self._probe_later()
            raise StateUnavailable(f"The response cache's Redis is down ({action} skipped).")
        try:
            with translate_redis_errors(action):
                try:
                    async with asyncio.timeout(deadline):
                        return await command()
                except TimeoutError as exc:  # asyncio's, which says nothing
                    raise TimeoutError(f"no answer within {deadline:g} s") from exc
        except StateUnavailable as exc:
            if not isinstance(exc.__cause__, ResponseError):
                self._failed(exc)  # not answered: refused, cut or too slow
            raise

    def _failed(self, exc: StateUnavailable) -> None:
        self._outage.failed(exc)
        self._probe_at = time.monotonic() + self._outage.backoff(PROBE_FIRST, PROBE_CAP)

    def _probe_later(self) -> None:
        """Start a PING in the background if one is due; no request waits for it."""
        if self._probe is None and time.monotonic() >= self._probe_at:
            self._probe = asyncio.create_task(self._ping(), name="response-cache-probe")

    async def _ping(self) -> None:
        try:
            with translate_redis_errors("probing the response cache"):
                async with asyncio.timeout(self._lookup_timeout):
                    await self._redis.ping()
        except StateUnavailable as exc:
            self._failed(exc)
        else:
            self._outage.ok()
        finally:
            self._probe = None
