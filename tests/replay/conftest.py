"""A replay-log factory over both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from claude_proxy.replay import ReplayLog, ReplaySettings, open_replay_log
from tests.state.redis_fixtures import key_prefix, redis_url
from tests.state.redis_server import start_redis

__all__ = ["key_prefix", "redis_url", "start_redis"]

MakeLog = Callable[..., Awaitable[ReplayLog]]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_log(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[MakeLog]:
    """``await make(**settings)``: an open log, closed after the test.

    For redis, calling it twice gives two replicas sharing one Redis.
    """
    url = "memory://"
    prefix = "unused:"
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")
    opened: list[ReplayLog] = []

    async def make(**fields: Any) -> ReplayLog:
        log = await open_replay_log(url, ReplaySettings(key_prefix=prefix, **fields))
        opened.append(log)
        return log

    yield make
    for log in opened:
        await log.close()
