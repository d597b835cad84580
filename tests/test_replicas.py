"""Limits that hold across replicas: three gateway processes sharing one Redis."""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import redis

from claude_proxy.server import RunningServer
from tests.conftest import SIM_KEY, StartSim
from tests.helpers import message_body
from tests.processes import GatewayProcess, gateway_process
from tests.state.redis_fixtures import key_prefix, redis_url

__all__ = ["key_prefix", "redis_url"]

HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "x-api-key": "key-a",
}


def config(sim: RunningServer, redis_url: str, prefix: str, **tenant: Any) -> dict[str, Any]:
    return {
        "upstreams": [{"name": "sim", "base_url": sim.url, "api_key": SIM_KEY}],
        "state": redis_url,
        "admission": {"key_prefix": prefix, "lease_seconds": 1.0},
        "tenants": [{"name": "team-a", "keys": ["key-a"], "queue_timeout": 30, **tenant}],
        "log": {"level": "info"},
    }


async def replicas(
    stack: AsyncExitStack, n: int, settings: dict[str, Any], tmp_path: Path
) -> list[GatewayProcess]:
    return list(
        await asyncio.gather(
            *(stack.enter_async_context(gateway_process(settings, tmp_path)) for _ in range(n))
        )
    )


async def stats(http: aiohttp.ClientSession, sim: RunningServer) -> dict[str, Any]:
    async with http.get(f"{sim.url}/sim/stats") as r:
        return dict(await r.json())


async def post(http: aiohttp.ClientSession, url: str, tokens: int, **body: Any) -> int:
    headers = {**HEADERS, "x-sim-answer-tokens": str(tokens)}
    async with http.post(f"{url}/v1/messages", json=message_body(**body), headers=headers) as r:
        await r.read()
        return r.status


async def test_window_of_five_holds_across_three_replicas(
    start_sim: StartSim, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    sim = await start_sim(speed=1.0)
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        gateways = await replicas(
            stack, 3, config(sim, redis_url, key_prefix, max_concurrent=5), tmp_path
        )
        statuses = await asyncio.gather(
            *(post(http, gateways[i % 3].url, 60, max_tokens=100) for i in range(50))
        )
        assert statuses == [200] * 50
        seen = await stats(http, sim)
        assert seen["requests"] == 50
        assert 1 < seen["max_in_flight"] <= 5


async def test_a_killed_replica_frees_its_slots_within_the_lease(
    start_sim: StartSim, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    sim = await start_sim(speed=1.0)
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        doomed, survivor = await replicas(
            stack, 2, config(sim, redis_url, key_prefix, max_concurrent=5), tmp_path
        )
        hogs = [
            asyncio.create_task(
                post(http, doomed.url, 20000, max_tokens=30000, model="claude-sonnet-4-6")
            )
            for _ in range(5)
        ]
        async with asyncio.timeout(10):
            while (await stats(http, sim))["in_flight"] < 5:
                await asyncio.sleep(0.02)
        doomed.kill()
        killed_at = time.monotonic()
        assert await post(http, survivor.url, 10) == 200
        waited = time.monotonic() - killed_at
        assert waited < 1.0 + 1.5  # the lease (1 s) plus the renewal/poll slack
        for hog in hogs:
            hog.cancel()


async def test_token_limit_does_not_overshoot_across_replicas(
    sim: RunningServer, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    settings = config(sim, redis_url, key_prefix, output_tokens_per_minute=2000, queue_timeout=0.5)
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        gateways = await replicas(stack, 3, settings, tmp_path)
        statuses = await asyncio.gather(
            *(post(http, gateways[i % 3].url, 100, max_tokens=100) for i in range(100))
        )
    assert set(statuses) <= {200, 429}
    assert 15 <= statuses.count(200) <= 22


async def test_answers_released_after_they_are_sent_leave_no_slot_behind(
    start_sim: StartSim, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """A whole answer's slot is released in the background once the answer is out; a
    replica stopped at once must still release every slot (not leave them to the lease)."""
    sim = await start_sim()
    settings = config(sim, redis_url, key_prefix, max_concurrent=3)
    settings["admission"]["lease_seconds"] = 60  # a slot left behind outlives the test
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        [gateway] = await replicas(stack, 1, settings, tmp_path)
        # One keep-alive connection, one request after the other: each is admitted
        # although the previous one's release may still be on its way.
        statuses = [await post(http, gateway.url, 20, max_tokens=100) for _ in range(20)]
        statuses += await asyncio.gather(
            *(post(http, gateway.url, 20, max_tokens=100) for _ in range(10))
        )
        assert statuses == [200] * 30
        gateway.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await gateway.process.wait() == 0
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard(key_prefix + "slots") == 0
        assert client.zcard(key_prefix + "slots:team-a") == 0
    finally:
        client.close()
