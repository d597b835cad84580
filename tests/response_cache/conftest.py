"""A response-cache factory over both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from claude_proxy.response_cache import ResponseCache, ResponseCacheSettings, open_response_cache
from tests.helpers import Clock
from tests.state.redis_fixtures import key_prefix, redis_url

__all__ = ["key_prefix", "redis_url"]

MakeCache = Callable[..., Awaitable[ResponseCache]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_cache(
    backend: str, clock: Clock, request: pytest.FixtureRequest
) -> AsyncIterator[MakeCache]:
    """``await make(**settings)``: an open cache, closed after the test."""
    url = "memory://"
    prefix = "unused:"
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")
    opened: list[ResponseCache] = []

    async def make(**fields: Any) -> ResponseCache:
        settings = ResponseCacheSettings(key_prefix=prefix, **fields)
        cache = await open_response_cache(url, settings, clock=clock)
        opened.append(cache)
        return cache

    yield make
    for cache in opened:
        await cache.close()
