"""Open redis-py asyncio clients from a URL and translate their errors at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from claude_proxy.state.errors import StateUnavailable

__all__ = ["open_redis", "translate_redis_errors"]

# Scripts and commands are short; a store that does not answer within this is treated as
# down rather than left to stall every request behind it.
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 64


def open_redis(
    url: str,
    *,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> aioredis.Redis:
    """A client for ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).

    Connections are made lazily; call ``await client.ping()`` to fail fast at start-up.
    Replies are decoded as UTF-8 strings. A burst of commands beyond ``max_connections``
    waits for a free connection (up to ``socket_timeout``) instead of failing at once,
    as the default pool would.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


@contextmanager
def translate_redis_errors(action: str) -> Iterator[None]:
    """Re-raise any redis-py error as :class:`StateUnavailable` (the URL is never included)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StateUnavailable(f"shared state unavailable while {action}") from exc
