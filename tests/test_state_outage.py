"""A gateway whose Redis loses its data or goes away, through the real app.

Each test runs its own ``redis-server`` (``tests.state.redis_server``) so that it can be
flushed, killed and restarted without touching the Redis other tests share.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from claude_proxy.server import RunningServer
from tests.conftest import StartGateway, StartSim
from tests.helpers import message_body
from tests.sse import parse_events
from tests.state.redis_server import StartRedis, start_redis

__all__ = ["start_redis"]

HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "x-api-key": "key-a",
}
SLOW = {"x-sim-fault": "slow:0.3"}  # the upstream takes 0.3 s before its first byte


def tenants(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "a", "keys": ["key-a"], "queue_timeout": 5, **fields}]


async def post(
    http: aiohttp.ClientSession, gateway: RunningServer, stream: bool = False, **headers: str
) -> tuple[int, Mapping[str, str], bytes]:
    body = message_body(stream=stream)
    async with http.post(
        f"{gateway.url}/v1/messages", json=body, headers={**HEADERS, **headers}
    ) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


async def max_in_flight(http: aiohttp.ClientSession, sim: RunningServer) -> int:
    async with http.get(f"{sim.url}/sim/stats") as r:
        return int((await r.json())["max_in_flight"])


async def test_limits_hold_after_flushdb(
    start_sim: StartSim, start_gateway: StartGateway, start_redis: StartRedis
) -> None:
    server = start_redis()
    sim = await start_sim()
    gateway = await start_gateway(
        sim.url, state=server.url, tenants=tenants(max_concurrent=2), upstream_max_concurrent=8
    )
    async with aiohttp.ClientSession() as http:
        assert (await post(http, gateway))[0] == 200
        server.flushdb()
        replies = await asyncio.gather(*(post(http, gateway, **SLOW) for _ in range(4)))
        assert [status for status, _, _ in replies] == [200] * 4
        # Two at once: the tenant's window, not a window of one nor none at all.
        assert await max_in_flight(http, sim) == 2


async def test_serves_the_next_request_after_a_restart_without_persistence(
    start_sim: StartSim, start_gateway: StartGateway, start_redis: StartRedis
) -> None:
    server = start_redis()
    sim = await start_sim()
    gateway = await start_gateway(
        sim.url, state=server.url, tenants=tenants(max_concurrent=2), upstream_max_concurrent=8
    )
    async with aiohttp.ClientSession() as http:
        assert (await post(http, gateway))[0] == 200
        server.kill()
        status, headers, body = await post(http, gateway)
        assert status == 503 and headers["retry-after"] == "1"
        assert b'"type":"api_error"' in body and b"shared state" in body
        server.start()
        assert (await post(http, gateway))[0] == 200
        replies = await asyncio.gather(*(post(http, gateway, **SLOW) for _ in range(4)))
        assert [status for status, _, _ in replies] == [200] * 4
        assert await max_in_flight(http, sim) == 2


async def test_a_paid_answer_is_delivered_when_redis_dies_mid_request(
    start_sim: StartSim,
    start_gateway: StartGateway,
    start_redis: StartRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    server = start_redis()
    sim = await start_sim()
    gateway = await start_gateway(sim.url, state=server.url, tenants=tenants())
    async with aiohttp.ClientSession() as http:
        whole = asyncio.create_task(post(http, gateway, **SLOW))
        streamed = asyncio.create_task(post(http, gateway, stream=True, **SLOW))
        abandoned = [  # clients that give up while Redis is down: settled all the same
            asyncio.create_task(asyncio.wait_for(post(http, gateway, **SLOW), 0.2))
            for _ in range(3)
        ]
        await asyncio.sleep(0.1)  # both admitted, both waiting on the upstream
        server.kill()
        status, _, body = await whole
        assert status == 200 and b'"stop_reason":"end_turn"' in body
        status, _, body = await streamed
        assert status == 200
        assert parse_events(body)[-1][0] == "message_stop"
        for client in abandoned:
            with pytest.raises(TimeoutError):
                await client
        await asyncio.sleep(0.3)  # their upstream calls end and settle
    gc.collect()  # a task whose exception nobody read says so when it is collected
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_a_stalled_redis_does_not_hold_back_an_answer(
    start_sim: StartSim, start_gateway: StartGateway, start_redis: StartRedis
) -> None:
    server = start_redis()
    sim = await start_sim(speed=1.0)  # 200 tokens: about 0.4 s
    gateway = await start_gateway(sim.url, state=server.url, tenants=tenants())
    tokens = {"x-sim-answer-tokens": "200"}
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        whole = asyncio.create_task(post(http, gateway, **tokens))
        streamed = asyncio.create_task(post(http, gateway, stream=True, **tokens))
        await asyncio.sleep(0.25)  # admitted, stream created, answers on their way
        server.pause()  # every Redis command now waits for its socket timeout (5 s)
        paused = loop.time()
        try:
            status, _, body = await whole
            assert status == 200 and b'"stop_reason":"end_turn"' in body
            status, _, body = await streamed
            assert status == 200 and parse_events(body)[-1][0] == "message_stop"
            assert loop.time() - paused < 2.0  # not held back by the release or the replay log
        finally:
            server.resume()


async def test_fail_open_admits_while_redis_is_down(
    start_sim: StartSim, start_gateway: StartGateway, start_redis: StartRedis
) -> None:
    server = start_redis()
    sim = await start_sim()
    gateway = await start_gateway(
        sim.url,
        state=server.url,
        tenants=tenants(max_concurrent=1, queue_timeout=0.1),
        admission={"on_state_failure": "open"},
    )
    async with aiohttp.ClientSession() as http:
        server.kill()
        assert (await post(http, gateway))[0] == 200
        replies = await asyncio.gather(*(post(http, gateway, **SLOW) for _ in range(2)))
        # Local limits still apply: one at once, the other waits past its queue_timeout.
        assert sorted(status for status, _, _ in replies) == [200, 429]
        server.start()
        assert (await post(http, gateway))[0] == 200
