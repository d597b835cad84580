"""``claude-proxy serve`` applies ``clients:``, with one process and with several workers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from claude_proxy.server import RunningServer
from tests.conftest import SIM_KEY
from tests.connections.raw import closed, connect, read_answer
from tests.processes import gateway_process
from tests.state.redis_fixtures import key_prefix, redis_url

__all__ = ["key_prefix", "redis_url"]

CLIENTS = {"header_timeout": 0.3}


async def check_limits(url: str) -> None:
    loop = asyncio.get_running_loop()
    # Timed from before connecting: the server's clock starts later than that, never earlier,
    # however late this loop gets round to resuming.
    opened = loop.time()
    reader, writer = await connect(url)
    assert await closed(reader, within=5.0)
    assert 0.2 < loop.time() - opened < 4.0
    writer.close()
    reader, writer = await connect(url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n")
    answer = await read_answer(reader)
    writer.close()
    assert answer.status == 400
    assert answer.error()["type"] == "invalid_request_error"


def upstream(sim: RunningServer) -> list[dict[str, Any]]:
    return [{"name": "sim", "base_url": sim.url, "api_key": SIM_KEY}]


async def test_serve_applies_the_client_settings(sim: RunningServer, tmp_path: Path) -> None:
    config = {"upstreams": upstream(sim), "clients": CLIENTS}
    async with gateway_process(config, tmp_path) as gateway:
        await check_limits(gateway.url)


async def test_every_worker_applies_the_client_settings(
    sim: RunningServer, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    config = {
        "workers": 2,
        "state": redis_url,
        "upstreams": upstream(sim),
        "admission": {"key_prefix": key_prefix + "admission:"},
        "streams": {"replay": {"key_prefix": key_prefix + "replay:"}},
        "clients": CLIENTS,
    }
    async with gateway_process(config, tmp_path) as gateway:
        await workers_listening(gateway.process.pid, gateway.url)
        # Fresh connections: the kernel spreads them over both workers.
        await asyncio.gather(*(check_limits(gateway.url) for _ in range(6)))


def children_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


async def workers_listening(supervisor: int, url: str) -> None:
    """Both workers started, and their sockets accept (the supervisor's URL comes first)."""
    async with asyncio.timeout(20):
        while len(children_of(supervisor)) < 2:
            await asyncio.sleep(0.05)
        for _ in range(10):  # some of these reach each worker
            async with aiohttp.ClientSession() as http:
                while True:
                    try:
                        async with http.get(f"{url}/healthz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.05)
