from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from claude_proxy.server import RunningServer
from tests.conftest import StartGateway, StartSim
from tests.state.redis_server import StartRedis, start_redis

__all__ = ["start_redis"]


async def test_health_and_readiness(gateway: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway.url}/healthz") as r:
        assert r.status == 200 and (await r.json())["status"] == "ok"
    async with http.get(f"{gateway.url}/readyz") as r:
        assert r.status == 200 and (await r.json())["status"] == "ready"


async def readiness(http: aiohttp.ClientSession, gateway: RunningServer) -> tuple[int, Any]:
    async with http.get(f"{gateway.url}/readyz") as r:
        return r.status, await r.json()


async def until_status(
    http: aiohttp.ClientSession, gateway: RunningServer, status: int
) -> dict[str, Any]:
    """Poll /readyz until it answers ``status`` (its health check is cached about 1 s)."""
    seen: list[tuple[int, Any]] = []
    deadline = asyncio.get_running_loop().time() + 5
    while asyncio.get_running_loop().time() < deadline:
        got, body = await readiness(http, gateway)
        if got == status:
            return dict(body)
        seen.append((got, body))
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered {status}: {seen[-3:]}")


async def test_unready_while_the_shared_state_is_unreachable(
    start_sim: StartSim,
    start_gateway: StartGateway,
    start_redis: StartRedis,
    http: aiohttp.ClientSession,
) -> None:
    server = start_redis()
    sim = await start_sim()
    gateway = await start_gateway(sim.url, state=server.url)
    assert await readiness(http, gateway) == (200, {"status": "ready"})
    server.kill()
    body = await until_status(http, gateway, 503)
    assert body["status"] == "unready" and "shared state" in body["reason"]
    server.start()
    assert await until_status(http, gateway, 200) == {"status": "ready"}


async def test_ready_but_degraded_when_admission_fails_open(
    start_sim: StartSim,
    start_gateway: StartGateway,
    start_redis: StartRedis,
    http: aiohttp.ClientSession,
) -> None:
    server = start_redis()
    sim = await start_sim()
    gateway = await start_gateway(sim.url, state=server.url, admission={"on_state_failure": "open"})
    server.kill()
    async with asyncio.timeout(3):
        while "degraded" not in (body := (await readiness(http, gateway))[1]):
            await asyncio.sleep(0.05)
    assert body["status"] == "ready"
    assert (await readiness(http, gateway))[0] == 200
