"""/metrics and /dashboard: this host only, or the operator key; never a tenant's key."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from claude_proxy.app import create_app
from claude_proxy.config import Settings, UpstreamSettings
from claude_proxy.server import RunningServer, start_server
from tests.conftest import SIM_KEY
from tests.helpers import API_HEADERS, message_body

PAGES = ("/metrics", "/dashboard", "/dashboard/data")
OPERATOR_KEY = "op-secret-123"


def host_address() -> str:
    """This machine's address on its network (not loopback), to call the gateway from."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks a route
        address = str(probe.getsockname()[0])
    except OSError:
        address = "127.0.0.1"
    finally:
        probe.close()
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback address to call the gateway from")
    return address


Start = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_public(sim: RunningServer) -> AsyncIterator[Start]:
    """Gateways listening on every address, in front of the simulator."""
    servers: list[RunningServer] = []

    async def start(**fields: Any) -> RunningServer:
        settings = Settings(
            upstreams=[UpstreamSettings(name="sim", base_url=sim.url, api_key=SIM_KEY)],
            listen={"host": "0.0.0.0", "port": 0},
            **fields,
        )
        server = await start_server(create_app(settings), "0.0.0.0", 0, shutdown_timeout=0.1)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def statuses(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str] | None = None
) -> list[int]:
    out = []
    for page in PAGES:
        async with http.get(f"{base}{page}", headers=headers or {}) as r:
            await r.read()
            out.append(r.status)
    return out


async def test_without_a_key_only_this_host_reads_them(
    start_public: Start, http: aiohttp.ClientSession
) -> None:
    gateway = await start_public()
    remote = f"http://{host_address()}:{gateway.port}"
    assert await statuses(http, f"http://127.0.0.1:{gateway.port}") == [200, 200, 200]
    assert await statuses(http, remote) == [403, 403, 403]
    async with http.get(f"{remote}/metrics") as r:
        assert (await r.json())["error"]["type"] == "permission_error"
    async with http.get(f"{remote}/healthz") as r:
        assert r.status == 200  # load balancers still probe it
    async with http.post(f"{remote}/v1/messages", json=message_body(), headers=API_HEADERS) as r:
        assert r.status == 403  # nor may a remote client use an open API


async def test_with_a_key_anyone_presenting_it_reads_them_and_no_one_else(
    start_public: Start, http: aiohttp.ClientSession
) -> None:
    gateway = await start_public(
        metrics={"operator_key": OPERATOR_KEY},
        tenants=[{"name": "team", "keys": ["team-key"]}],
    )
    remote = f"http://{host_address()}:{gateway.port}"
    bearer = {"authorization": f"Bearer {OPERATOR_KEY}"}
    basic = {"authorization": "Basic " + base64.b64encode(f"ops:{OPERATOR_KEY}".encode()).decode()}
    assert await statuses(http, remote, bearer) == [200, 200, 200]  # Prometheus
    assert await statuses(http, remote, basic) == [200, 200, 200]  # a browser
    assert await statuses(http, remote, {"x-api-key": OPERATOR_KEY}) == [200, 200, 200]
    for refused in ({}, {"x-api-key": "team-key"}, {"authorization": "Bearer wrong"}):
        assert await statuses(http, remote, refused) == [401, 401, 401]
    async with http.get(f"{remote}/metrics", headers={"x-api-key": "team-key"}) as r:
        assert r.headers["www-authenticate"].startswith("Basic")
        body = await r.text()
    assert "team-key" not in body and OPERATOR_KEY not in body
