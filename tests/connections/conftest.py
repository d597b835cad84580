"""A gateway with client limits of the test's choosing, in front of the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from claude_proxy.app import create_app
from claude_proxy.config import Settings, UpstreamSettings
from claude_proxy.config.settings import ClientSettings
from claude_proxy.server import RunningServer, start_server
from tests.conftest import SIM_KEY

StartGuarded = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_guarded(sim: RunningServer) -> AsyncIterator[StartGuarded]:
    """Start gateways with ``ClientSettings(**fields)``; all stop after the test."""
    servers: list[RunningServer] = []

    async def start(**fields: Any) -> RunningServer:
        settings = Settings(
            upstreams=[UpstreamSettings(name="sim", base_url=sim.url, api_key=SIM_KEY)],
            clients=ClientSettings(**fields),
        )
        app = create_app(settings)
        server = await start_server(
            app, "127.0.0.1", 0, shutdown_timeout=0.1, clients=settings.clients
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
