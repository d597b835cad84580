"""GET /metrics and the request log after a known mix of requests through the gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from claude_proxy.config import RetrySettings, StreamSettings
from claude_proxy.server import RunningServer
from tests.conftest import SIM_KEY, StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.sse import parse_events

KEY_A, KEY_B = "sk-tenant-a-0123456789secret", "sk-tenant-b-9876543210secret"
PROMPT = "my confidential merger plan for ACME"
TENANTS = [{"name": "team-a", "keys": [KEY_A]}, {"name": "team-b", "keys": [KEY_B]}]

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: aiohttp.ClientSession, gateway: RunningServer) -> tuple[str, Series]:
    async with http.get(f"{gateway.url}/metrics") as r:
        assert r.status == 200 and r.content_type == "text/plain"
        text = await r.text()
    series = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, series


def total(series: Series, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and wanted <= ls)


async def call(
    http: aiohttp.ClientSession,
    gateway: RunningServer,
    key: str,
    fault: str | None = None,
    **body: Any,
) -> tuple[int, dict[str, Any] | None]:
    """Status and usage of one call (the stream's final usage for streams)."""
    headers = {**API_HEADERS, "x-api-key": key}
    if fault:
        headers["x-sim-fault"] = fault
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(PROMPT, **body), headers=headers
    ) as r:
        raw = await r.read()
        if r.status != 200:
            return r.status, None
        if body.get("stream"):
            events = parse_events(raw)
            start = events[0][1]["message"]["usage"]
            return 200, {**start, **events[-2][1]["usage"]}
        return 200, orjson.loads(raw)["usage"]


async def test_a_known_mix_gives_exact_counts_and_no_secrets(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    request_log: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = await start_sim(speed=0.2)
    gateway = await start_gateway(
        sim.url,
        tenants=TENANTS,
        retry=RetrySettings(max_attempts=1, heal_streams=False),
        streams=StreamSettings(resume_grace=0),
    )
    results = [
        *[await call(http, gateway, KEY_A) for _ in range(3)],
        *[await call(http, gateway, KEY_B, stream=True) for _ in range(2)],
        await call(http, gateway, KEY_A, "429"),
        await call(http, gateway, KEY_B, "529", stream=True),
        await call(http, gateway, KEY_A, "500"),
        await call(http, gateway, "sk-unknown-key"),
    ]
    assert [status for status, _ in results] == [200] * 5 + [429, 529, 500, 401]
    # A client that leaves mid-stream.
    headers = {**API_HEADERS, "x-api-key": KEY_B, "x-sim-answer-tokens": "2000"}
    body = message_body(PROMPT, stream=True, max_tokens=4000)
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
        await r.content.readany()
        r.close()

    async def settled() -> Series:
        async with asyncio.timeout(5):
            while True:
                _, series = await scrape(http, gateway)
                done = total(series, "api_request_duration_seconds_count") == 10
                if done and total(series, "api_open_streams") == 0:
                    return series
                await asyncio.sleep(0.02)

    s = await settled()
    count = "api_request_duration_seconds_count"
    assert total(s, count, status_class="2xx") == 5
    assert total(s, count, status_class="4xx") == 3  # 429, 401 and the 499 of the client
    assert total(s, count, status_class="5xx") == 2
    assert total(s, count, tenant="team-a") == 5 and total(s, count, tenant="team-b") == 4
    assert total(s, count, tenant="other") == 1  # the unknown key
    assert total(s, count, stream="yes") == 4
    assert total(s, "api_errors_total") == 5
    for error_type in ("rate_limit", "overloaded", "api_error", "authentication"):
        assert total(s, "api_errors_total", error_type=error_type) == 1, error_type
    assert total(s, "api_errors_total", error_type="client_disconnect", stream="yes") == 1
    assert total(s, "api_upstream_attempts_total") == 9
    assert total(s, "api_upstream_attempts_total", outcome="ok") == 6
    for status in (429, 529, 500):
        assert total(s, "api_upstream_attempts_total", outcome=f"http_{status}") == 1
    usages = [usage for _, usage in results if usage is not None]
    assert total(s, "api_tokens_total", type="input", tenant="team-a") == sum(
        u["input_tokens"] for u in usages[:3]
    )
    assert total(s, "api_tokens_total", type="output", tenant="team-b") >= sum(
        u["output_tokens"] for u in usages[3:]
    )  # plus what the abandoned stream generated before it was cancelled
    assert total(s, "api_time_to_first_token_seconds_count") >= 2
    assert total(s, "api_requests_in_flight") == 0
    assert total(s, "api_tenant_in_flight") == 0

    text, _ = await scrape(http, gateway)
    logged = repr(request_log) + caplog.text
    for secret in (KEY_A, KEY_B, SIM_KEY, "sk-unknown-key", PROMPT):
        assert secret not in text
        assert secret not in logged
    requests = [event for event in request_log if event["event"] == "request"]
    assert sorted(event["status"] for event in requests) == sorted(
        [200] * 5 + [429, 529, 500, 401, 499]
    )
    assert all(event["logger"] == "claude_proxy.requests" for event in requests)
    ok = [event for event in requests if event["status"] == 200]
    assert all("duration_ms" in event and "overhead_ms" in event for event in ok)
    assert sum(event.get("output_tokens", 0) for event in ok) == sum(
        u["output_tokens"] for u in usages
    )


async def test_every_api_response_reports_the_gateways_overhead(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    for body in (message_body(), message_body(stream=True)):
        async with http.post(f"{gateway.url}/v1/messages", json=body, headers=API_HEADERS) as r:
            await r.read()
            overhead = float(r.headers["x-proxy-overhead-ms"])
            assert 0 <= overhead < 1000
    async with http.post(f"{gateway.url}/v1/messages", data=b"{", headers=API_HEADERS) as r:
        assert r.status == 400 and float(r.headers["x-proxy-overhead-ms"]) >= 0


async def test_the_dashboard_is_served_with_its_data(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS
    ) as r:
        assert r.status == 200
    async with http.get(f"{gateway.url}/dashboard") as r:
        assert r.status == 200 and r.content_type == "text/html"
        page = await r.text()
    assert "<canvas" in page and "http://" not in page and "https://" not in page
    async with http.get(f"{gateway.url}/dashboard/data") as r:
        data = await r.json()
    assert data["requests"] == 1
    assert data["tenants"]["default"]["requests"] == 1
    assert data["upstream"]["breakers"] == {"sim": 0}


async def test_metrics_can_be_switched_off(
    start_gateway: StartGateway, sim: RunningServer, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, metrics={"enabled": False})
    for stream in (False, True):
        body = message_body(stream=stream)
        async with http.post(f"{gateway.url}/v1/messages", json=body, headers=API_HEADERS) as r:
            assert r.status == 200
            await r.read()
    async with http.get(f"{gateway.url}/metrics") as r:
        assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"
    async with http.get(f"{gateway.url}/dashboard/data") as r:
        assert (await r.json())["requests"] == 0  # nothing was recorded


async def test_tenant_gauges_show_what_waits_and_what_holds_a_slot(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(speed=1.0)
    tenants = [{"name": "team-a", "keys": [KEY_A], "max_concurrent": 1}]
    gateway = await start_gateway(sim.url, tenants=tenants)
    headers = {**API_HEADERS, "x-api-key": KEY_A, "x-sim-answer-tokens": "300"}
    body = message_body(max_tokens=400)

    async def slow_call() -> int:
        async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
            await r.read()
            return r.status

    calls = [asyncio.create_task(slow_call()) for _ in range(2)]
    async with asyncio.timeout(5):
        while True:
            _, s = await scrape(http, gateway)
            if total(s, "api_queue_depth", tenant="team-a") == 1:
                break
            await asyncio.sleep(0.01)
    assert total(s, "api_tenant_in_flight", tenant="team-a") == 1
    assert await asyncio.gather(*calls) == [200, 200]
    _, s = await scrape(http, gateway)
    assert total(s, "api_queue_depth") == 0 and total(s, "api_tenant_in_flight") == 0
    assert total(s, "api_queue_wait_seconds_count", tenant="team-a") == 2
