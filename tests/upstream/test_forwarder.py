"""Retries, failover, cooldowns and the circuit breaker, against real simulators."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from random import Random

import aiohttp
import anthropic
import pytest

from claude_proxy.app import create_app
from claude_proxy.config import BreakerSettings, RetrySettings, Settings, UpstreamSettings
from claude_proxy.server import RunningServer, start_server
from claude_proxy.sim import FaultRates
from claude_proxy.upstream.forwarder import Forwarder
from claude_proxy.upstream.router import Router
from tests.conftest import SIM_KEY, StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body

FAST_RETRY = RetrySettings(base_delay=0.01, max_delay=0.05)


def faulty(fault: str, times: int) -> dict[str, str]:
    """Headers making the simulator fail the first ``times`` attempts of this request only."""
    return {
        **API_HEADERS,
        "x-sim-fault": fault,
        "x-sim-fault-times": str(times),
        "x-sim-fault-key": uuid.uuid4().hex,
        "x-sim-retry-after": "0.01",
    }


async def sim_requests(http: aiohttp.ClientSession, sim: RunningServer) -> int:
    async with http.get(f"{sim.url}/sim/stats") as r:
        return int((await r.json())["requests"])


@pytest.mark.parametrize("fault", ["429", "529", "500", "reset"])
async def test_transient_failures_are_retried_until_success(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession, fault: str
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST_RETRY)
    body = message_body()
    async with http.post(
        f"{sim.url}/v1/messages", json=body, headers={**API_HEADERS, "x-api-key": SIM_KEY}
    ) as r:
        expected = (await r.json())["content"]
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=faulty(fault, 2)) as r:
        assert r.status == 200
        assert r.headers["x-proxy-attempts"] == "3"
        assert (await r.json())["content"] == expected


async def test_gives_up_after_max_attempts_with_the_upstream_error(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, retry=RetrySettings(max_attempts=3, base_delay=0.01))
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=faulty("529", 99)
    ) as r:
        assert r.status == 529
        assert (await r.json())["error"]["type"] == "overloaded_error"
        assert r.headers["x-proxy-attempts"] == "3"
    assert await sim_requests(http, sim) == 3


async def test_client_errors_are_not_retried(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST_RETRY)
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=API_HEADERS) as r:
        assert r.status == 400
        assert r.headers["x-proxy-attempts"] == "1"


async def test_client_side_retries_reduce_ours(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, retry=RetrySettings(max_attempts=4, base_delay=0.01))
    headers = {**faulty("529", 99), "x-stainless-retry-count": "2"}
    async with http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=headers) as r:
        assert r.status == 529
        assert r.headers["x-proxy-attempts"] == "2"


async def test_retry_budget_stops_amplification(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    retry = RetrySettings(base_delay=0.01, budget=0.5, budget_min_per_second=0)
    gateway = await start_gateway(sim.url, retry=retry, breaker=BreakerSettings(min_requests=1000))
    statuses = []
    for _ in range(10):
        post = http.post(
            f"{gateway.url}/v1/messages", json=message_body(), headers=faulty("500", 99)
        )
        async with post as r:
            statuses.append(r.status)
    assert statuses == [500] * 10
    # 10 requests may cost at most 10 + 0.5 * 10 upstream calls, not 40.
    assert await sim_requests(http, sim) <= 15


async def test_deadline_bounds_retry_waits(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, retry=RetrySettings(deadline=0.5))
    headers = {**faulty("529", 99), "x-sim-retry-after": "5"}
    async with http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=headers) as r:
        assert r.status == 529
        assert r.headers["retry-after"] == "5"
        assert r.headers["x-proxy-attempts"] == "1"


async def start_gateway_over(*urls: str, **fields: object) -> RunningServer:
    settings = Settings(
        upstreams=[
            UpstreamSettings(name=f"d{i}", base_url=url, api_key=SIM_KEY)
            for i, url in enumerate(urls)
        ],
        **fields,  # type: ignore[arg-type]
    )
    return await start_server(create_app(settings), "127.0.0.1", 0, shutdown_timeout=0.1)


async def test_failover_and_circuit_breaker_with_recovery(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    healthy = await start_sim()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    gateway = await start_gateway_over(
        f"http://127.0.0.1:{dead_port}",
        healthy.url,
        retry=FAST_RETRY,
        breaker=BreakerSettings(min_requests=3, open_seconds=0.3),
    )
    try:
        for _ in range(30):
            post = http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS)
            async with post as r:
                assert r.status == 200  # every request fails over to the healthy deployment
        assert await sim_requests(http, healthy) == 30
        services = gateway.runner.app[__import__("claude_proxy.services").services.SERVICES]
        dead = services.router.deployments[0]
        assert dead.breaker.times_opened == 1  # opened after 3 failures, then left alone
        assert dead.attempts <= 4

        # The dead deployment comes back on the same port; after open_seconds a probe closes it.
        revived = await start_server(
            __import__("claude_proxy.sim").sim.create_sim_app(
                __import__("claude_proxy.sim").sim.SimSettings(api_key=SIM_KEY, speed=0)
            ),
            "127.0.0.1",
            dead_port,
        )
        try:
            deadline = __import__("time").monotonic() + 5
            while dead.breaker.state.value != "closed":
                assert __import__("time").monotonic() < deadline, "breaker never closed"
                post = http.post(
                    f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS
                )
                async with post as r:
                    assert r.status == 200
            assert await sim_requests(http, revived) >= 1
        finally:
            await revived.stop()
    finally:
        await gateway.stop()


async def test_a_429_cools_only_its_deployment(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    limited = await start_sim(faults=FaultRates(p_429=1.0), retry_after=30.0)
    healthy = await start_sim()
    gateway = await start_gateway_over(limited.url, healthy.url, retry=FAST_RETRY)
    try:
        for _ in range(20):
            post = http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS)
            async with post as r:
                assert r.status == 200
        assert await sim_requests(http, limited) == 1  # asked once, then left to cool down
        assert await sim_requests(http, healthy) == 20
    finally:
        await gateway.stop()


async def test_open_breaker_on_the_only_deployment_fails_fast(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    breaker = BreakerSettings(min_requests=2, open_seconds=30)
    gateway = await start_gateway(sim.url, retry=FAST_RETRY, breaker=breaker)
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=faulty("500", 99)
    ) as r:
        assert r.status == 529  # two failed attempts opened the breaker
        assert int(r.headers["retry-after"]) > 25
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS
    ) as r:
        assert r.status == 529
        assert (await r.json())["error"]["message"].startswith(
            "All upstream deployments are failing"
        )
    assert await sim_requests(http, sim) == 2


async def test_sdk_without_retries_sees_success_through_faults(
    sim: RunningServer, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST_RETRY)
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0)
    message = await client.messages.create(**message_body(), extra_headers=faulty("529", 1))
    assert message.stop_reason in ("end_turn", "max_tokens")


def test_an_attempt_waits_as_long_as_its_answer_may_take() -> None:
    forwarder = Forwarder(Settings(), Router((), BreakerSettings(), time.monotonic, Random()))
    assert forwarder.attempt_timeout(True, 4096) == 60  # a stream: its headers
    assert forwarder.attempt_timeout(False, None) == 60  # count_tokens, model reads
    assert forwarder.attempt_timeout(False, 350) == 70  # 60 s + 350 tokens at 35/s
    assert forwarder.attempt_timeout(False, 64000) == 600  # capped


async def test_a_silent_upstream_costs_the_first_byte_timeout_not_ten_minutes(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    retry = RetrySettings(first_byte_timeout=0.2, max_attempts=2, base_delay=0.01)
    gateway = await start_gateway(f"http://127.0.0.1:{port}", retry=retry)
    try:
        started = time.monotonic()
        async with http.post(
            f"{gateway.url}/v1/messages", json=message_body(stream=True), headers=API_HEADERS
        ) as r:
            assert r.status == 504
            assert (await r.json())["error"]["type"] == "timeout_error"
            assert r.headers["x-proxy-attempts"] == "2"
        assert time.monotonic() - started < 2
    finally:
        silent.close()
