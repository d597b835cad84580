"""Choose the response-cache backend from its URL; Redis is imported only when chosen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from claude_proxy.response_cache.base import ResponseCache
from claude_proxy.response_cache.settings import ResponseCacheSettings
from claude_proxy.state.backends import load_backend

__all__ = ["BACKENDS", "open_response_cache"]

BACKENDS = {
    "memory": "claude_proxy.response_cache.memory:MemoryResponseCache",
    "redis": "claude_proxy.response_cache.redis:RedisResponseCache",
    "rediss": "claude_proxy.response_cache.redis:RedisResponseCache",
    "unix": "claude_proxy.response_cache.redis:RedisResponseCache",
}


async def open_response_cache(
    url: str, settings: ResponseCacheSettings, *, clock: Callable[[], float] = time.monotonic
) -> ResponseCache:
    """The store for ``url`` (``memory://`` or ``redis://…``), connected; close it later.

    ``clock``: the memory backend's, for expiry (tests move it instead of sleeping).
    """
    scheme = urlsplit(url).scheme
    if scheme not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown response cache scheme {scheme!r}; use one of {known}")
    backend = load_backend(BACKENDS, scheme, what="response cache at")
    return cast(ResponseCache, await backend.open(url, settings, clock=clock))
