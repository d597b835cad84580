from __future__ import annotations

import aiohttp

from claude_proxy.server import RunningServer


async def test_health_and_readiness(gateway: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway.url}/healthz") as r:
        assert r.status == 200 and (await r.json())["status"] == "ok"
    async with http.get(f"{gateway.url}/readyz") as r:
        assert r.status == 200 and (await r.json())["status"] == "ready"
