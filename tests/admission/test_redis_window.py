"""The shared window on Redis: success signals that cannot move it cost no round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from claude_proxy.admission import AdmissionSettings, open_admission
from claude_proxy.admission.base import Admission
from tests.admission.helpers import tenant
from tests.state.redis_fixtures import key_prefix, redis_url

__all__ = ["key_prefix", "redis_url"]


@pytest.fixture
async def replicas(redis_url: str, key_prefix: str) -> AsyncIterator[list[Admission]]:
    settings = AdmissionSettings(
        state=redis_url, key_prefix=key_prefix, upstream_max_concurrent=4, decrease_cooldown=0
    )
    opened = [await open_admission(settings, [tenant("a")]) for _ in range(2)]
    yield opened
    for admission in opened:
        await admission.close()


async def scripts_run(redis_url: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_successes_at_the_full_window_are_not_sent(
    replicas: list[Admission], redis_url: str
) -> None:
    first, second = replicas
    await first.on_upstream_status(200)  # learns that the window is full
    before = await scripts_run(redis_url)
    for _ in range(50):
        await first.on_upstream_status(200)
    # (The count is Redis-wide: a background renewal may land in it, never 50.)
    assert await scripts_run(redis_url) - before < 5
    # A cut is always sent, and the replica that made it counts successes again at once.
    await first.on_upstream_status(529)
    assert (await first.snapshot()).window == 2
    for _ in range(2):
        await first.on_upstream_status(200)
    assert (await second.snapshot()).window == 3
