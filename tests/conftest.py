"""Shared fixtures: the simulator and the gateway as real servers on loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import structlog

from claude_proxy.app import create_app
from claude_proxy.config import RetrySettings, Settings, UpstreamSettings
from claude_proxy.server import RunningServer, start_server
from claude_proxy.services import StageFactory
from claude_proxy.sim import SimSettings, create_sim_app

SIM_KEY = "sk-ant-test-upstream-key"

StartSim = Callable[..., Awaitable[RunningServer]]
StartGateway = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Start simulators (speed 0, key SIM_KEY unless overridden); all stop after the test."""
    servers: list[RunningServer] = []

    async def start(**overrides: Any) -> RunningServer:
        settings = SimSettings(**{"api_key": SIM_KEY, "speed": 0.0, **overrides})
        server = await start_server(create_sim_app(settings), "127.0.0.1", 0, shutdown_timeout=0.1)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def sim(start_sim: StartSim) -> RunningServer:
    return await start_sim()


@pytest.fixture
async def start_gateway() -> AsyncIterator[StartGateway]:
    """Start gateways in front of a given upstream URL; all stop after the test."""
    servers: list[RunningServer] = []

    async def start(
        upstream_url: str,
        api_key: str | None = SIM_KEY,
        extra_stages: StageFactory | None = None,
        **fields: Any,
    ) -> RunningServer:
        settings = Settings(
            upstreams=[UpstreamSettings(name="sim", base_url=upstream_url, api_key=api_key)],
            **fields,
        )
        app = create_app(settings, extra_stages=extra_stages)
        server = await start_server(app, "127.0.0.1", 0, shutdown_timeout=0.1)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def gateway(start_gateway: StartGateway, sim: RunningServer) -> RunningServer:
    return await start_gateway(sim.url)


@pytest.fixture
async def plain_gateway(start_gateway: StartGateway, sim: RunningServer) -> RunningServer:
    """A gateway that never retries or heals: upstream behaviour reaches the client as is."""
    return await start_gateway(sim.url, retry=RetrySettings(max_attempts=1, heal_streams=False))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def request_log() -> Iterator[list[dict[str, Any]]]:
    """The request log's events as structlog hands them to its renderer."""
    with structlog.testing.capture_logs() as events:
        yield events
