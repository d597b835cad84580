"""Open redis-py asyncio clients from a URL and translate their errors at the boundary."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from claude_proxy.state.errors import StateUnavailable

__all__ = ["close_within", "open_redis", "translate_redis_errors"]

_log = logging.getLogger("claude_proxy.state")

# Scripts and commands are short; a store that does not answer within this is treated as
# down rather than left to stall every request behind it.
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 64
CLOSE_SECONDS = 0.5


def open_redis(
    url: str,
    *,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    decode_responses: bool = True,
) -> aioredis.Redis:
    """A client for ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).

    Connections are made lazily; call ``await client.ping()`` to fail fast at start-up.
    Replies are decoded as UTF-8 strings unless ``decode_responses`` is false. A burst
    of commands beyond ``max_connections`` waits for a free connection (up to
    ``socket_timeout``) instead of failing at once, as the default pool would.

    A command that fails on a broken connection is sent once more on a new one: after
    Redis restarts, every pooled connection is to the old process, and without this the
    first command on each would fail although Redis is back. Only connection errors are
    retried, not timeouts: a host that does not answer must not cost twice the timeout.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout,
        decode_responses=decode_responses,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


@contextmanager
def translate_redis_errors(action: str) -> Iterator[None]:
    """Re-raise any redis-py error as :class:`StateUnavailable` (the URL is never included)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StateUnavailable(
            f"The gateway's shared state is unavailable while {action}; retry shortly."
        ) from exc


async def close_within(
    closing: Awaitable[object], what: str, deadline: float = CLOSE_SECONDS
) -> None:
    """Await ``closing`` (an ``aclose()``) for at most ``deadline`` seconds; log, never raise.

    Shutdown must not wait on a store that is down, nor on a connection a stuck reader holds.
    """
    try:
        async with asyncio.timeout(deadline):
            await closing
    except (RedisError, OSError) as exc:  # TimeoutError is an OSError
        _log.warning("closing %s failed: %r", what, exc)
