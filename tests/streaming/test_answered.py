"""A client that leaves as soon as it has the whole answer did not disconnect early."""

from __future__ import annotations

import asyncio

import aiohttp

from claude_proxy.server import RunningServer
from tests.conftest import StartGateway
from tests.helpers import API_HEADERS, message_body
from tests.state.redis_fixtures import key_prefix, redis_url

__all__ = ["key_prefix", "redis_url"]


async def requests_by_error(
    http: aiohttp.ClientSession, gateway: RunningServer
) -> dict[str, float]:
    async with http.get(f"{gateway.url}/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("api_request_duration_seconds_count{"):
            error = line.split('error_type="', 1)[1].split('"', 1)[0]
            out[error] = out.get(error, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def test_leaving_right_after_message_stop_is_a_normal_end(
    start_gateway: StartGateway, sim: RunningServer, redis_url: str, key_prefix: str
) -> None:
    # With Redis the stream's end waits for its last writes: a window to leave in.
    gateway = await start_gateway(
        sim.url, state=redis_url, streams={"replay": {"key_prefix": key_prefix}},
        admission={"key_prefix": key_prefix + "admission:"},
    )  # fmt: skip
    body = message_body(stream=True)
    for _ in range(30):
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"{gateway.url}/v1/messages", json=body, headers=API_HEADERS) as r,
        ):
            received = b""
            while b"event: message_stop" not in received:
                received += await r.content.readany()
        # the session closes here, dropping the connection at once
    async with aiohttp.ClientSession() as http, asyncio.timeout(5):
        while sum((counts := await requests_by_error(http, gateway)).values()) < 30:
            await asyncio.sleep(0.02)
    assert counts == {"none": 30}
