"""Tenants through the gateway: keys, models, queueing, 429s and token limits."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from claude_proxy.server import RunningServer
from claude_proxy.services import SERVICES
from tests.conftest import StartGateway, StartSim
from tests.helpers import message_body

HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}


def tenant(name: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "keys": [key], **fields}


def as_tenant(key: str, bearer: bool = False, **extra: str) -> dict[str, str]:
    auth = {"authorization": f"Bearer {key}"} if bearer else {"x-api-key": key}
    return {**HEADERS, **auth, **extra}


async def post(
    http: aiohttp.ClientSession, gateway: RunningServer, headers: dict[str, str], **body: Any
) -> aiohttp.ClientResponse:
    response = await http.post(
        f"{gateway.url}/v1/messages", json=message_body(**body), headers=headers
    )
    await response.read()
    return response


async def test_keys_and_models(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(
        sim.url, tenants=[tenant("team-a", "key-a", models=["claude-haiku-*"])]
    )
    assert (await post(http, gateway, as_tenant("key-a"))).status == 200
    assert (await post(http, gateway, as_tenant("key-a", bearer=True))).status == 200
    unknown = await post(http, gateway, as_tenant("key-z"))
    assert unknown.status == 401
    assert (await unknown.json())["error"]["type"] == "authentication_error"
    assert (await post(http, gateway, HEADERS)).status == 401
    forbidden = await post(http, gateway, as_tenant("key-a"), model="claude-sonnet-4-6")
    assert forbidden.status == 403
    assert (await forbidden.json())["error"]["type"] == "permission_error"
    assert "key-z" not in await unknown.text()


async def test_queue_timeout_is_a_429_with_retry_after_and_limit_headers(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(speed=1.0)
    gateway = await start_gateway(
        sim.url,
        tenants=[
            tenant("team-a", "key-a", max_concurrent=1, queue_timeout=0.2, requests_per_minute=600)
        ],
    )
    slow = as_tenant("key-a", **{"x-sim-answer-tokens": "1500"})
    holder = asyncio.create_task(post(http, gateway, slow, max_tokens=2000))
    await asyncio.sleep(0.1)  # the holder has its slot (bounded, one short wait)
    refused = await post(http, gateway, as_tenant("key-a"))
    assert refused.status == 429
    assert (await refused.json())["error"]["type"] == "rate_limit_error"
    assert float(refused.headers["retry-after"]) > 0
    assert refused.headers["anthropic-ratelimit-requests-limit"] == "600"
    holder.cancel()


async def test_a_client_that_gives_up_while_queued_leaves_the_queue(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(speed=1.0)
    gateway = await start_gateway(
        sim.url, tenants=[tenant("team-a", "key-a", max_concurrent=1, queue_timeout=30)]
    )
    admission = gateway.runner.app[SERVICES].admission
    slow = as_tenant("key-a", **{"x-sim-answer-tokens": "400"})
    holder = asyncio.create_task(post(http, gateway, slow, max_tokens=1000))
    async with aiohttp.ClientSession() as impatient:
        waiting = asyncio.create_task(post(impatient, gateway, as_tenant("key-a")))
        async with asyncio.timeout(5):
            while (await admission.snapshot()).queued == 0:
                await asyncio.sleep(0.01)
        waiting.cancel()
    async with asyncio.timeout(5):
        while (await admission.snapshot()).queued != 0:
            await asyncio.sleep(0.01)
    assert (await holder).status == 200
    snapshot = await admission.snapshot()
    assert snapshot.in_flight == 0


async def test_upstream_sees_the_gateway_key_never_the_tenant_key(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    # The simulator only accepts the gateway's upstream key: a forwarded tenant key would 401.
    gateway = await start_gateway(sim.url, tenants=[tenant("team-a", "tenant-secret")])
    assert (await post(http, gateway, as_tenant("tenant-secret"))).status == 200


@pytest.mark.parametrize("stream", [False, True])
async def test_output_token_limit_holds_under_concurrency(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession, stream: bool
) -> None:
    gateway = await start_gateway(
        sim.url,
        tenants=[tenant("team-a", "key-a", output_tokens_per_minute=2000, queue_timeout=0.3)],
    )
    headers = as_tenant("key-a", **{"x-sim-answer-tokens": "100"})
    responses = await asyncio.gather(
        *(post(http, gateway, headers, max_tokens=100, stream=stream) for _ in range(100))
    )
    statuses = [r.status for r in responses]
    assert set(statuses) <= {200, 429}
    # 2,000 output tokens per minute at max_tokens 100 admit at most 20 (plus what refills
    # in the test's own second or so: 2000/60 per second).
    assert 15 <= statuses.count(200) <= 22
