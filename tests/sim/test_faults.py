"""Fault injection: forced kinds as the SDK sees them, seeded mixes, and /sim/stats."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import anthropic
import pytest

from claude_proxy.sim.settings import FaultRates

from .conftest import Sim, StartSim, body, headers, parse_sse


def _forced(sim: Sim, fault: str, **kwargs: Any) -> anthropic.AsyncAnthropic:
    return sim.client(default_headers={"x-sim-fault": fault}, **kwargs)


async def _final(client: anthropic.AsyncAnthropic, stream: bool) -> anthropic.types.Message:
    if not stream:
        message: anthropic.types.Message = await client.messages.create(**body())
        return message
    async with client.messages.stream(**body()) as events:
        return await events.get_final_message()


async def _event_types(client: anthropic.AsyncAnthropic, seen: list[str]) -> None:
    async with client.messages.stream(**body()) as stream:
        async for event in stream:
            seen.append(event.type)


async def _raw_stream(
    sim: Sim, http: aiohttp.ClientSession, fault: str, received: bytearray
) -> None:
    async with http.post(
        f"{sim.url}/v1/messages",
        headers=headers(x_sim_fault=fault),
        json={**body(), "stream": True},
    ) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_any():
            received.extend(chunk)


async def _stats(sim: Sim, http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get(f"{sim.url}/sim/stats") as resp:
        data: dict[str, Any] = await resp.json()
        return data


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", anthropic.RateLimitError),
        ("529", anthropic.OverloadedError),
        ("500", anthropic.InternalServerError),
        ("reset", anthropic.APIConnectionError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_request_level_faults(
    sim: Sim, fault: str, error: type[Exception], stream: bool
) -> None:
    async with _forced(sim, fault) as client:
        with pytest.raises(error):
            await _final(client, stream)
    assert sim.state.stats.faults[fault] == 1


async def test_429_headers(sim: Sim, http: aiohttp.ClientSession) -> None:
    hdrs = headers(x_sim_fault="429", x_sim_retry_after="7")
    async with http.post(f"{sim.url}/v1/messages", headers=hdrs, json=body()) as resp:
        assert resp.status == 429
        assert resp.headers["retry-after"] == "7"
        assert resp.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert resp.headers["anthropic-ratelimit-tokens-reset"].endswith("Z")
        assert resp.headers["request-id"].startswith("req_")
        data = await resp.json()
    assert data["error"]["type"] == "rate_limit_error"


async def test_should_retry_knob_stops_sdk_retries(sim: Sim) -> None:
    headers_ = {"x-sim-fault": "529", "x-sim-should-retry": "false"}
    async with sim.client(default_headers=headers_, max_retries=3) as client:
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(**body())
    assert sim.state.stats.by_endpoint["messages"] == 1


async def test_sdk_retries_through_429(sim: Sim) -> None:
    headers_ = {"x-sim-fault": "429", "x-sim-retry-after": "0.01"}
    async with sim.client(default_headers=headers_, max_retries=2) as client:
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(**body())
    assert sim.state.stats.faults["429"] == 3


async def test_cut_stream_breaks_sdk(sim: Sim) -> None:
    async with _forced(sim, "cut:4") as client:
        seen: list[str] = []
        # The SDK lets the transport error through unwrapped (httpx RemoteProtocolError).
        with pytest.raises(Exception, match=r"incomplete|peer closed") as info:
            await _event_types(client, seen)
    assert "ProtocolError" in type(info.value).__name__
    assert seen[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert "message_stop" not in seen


async def test_cut_stream_raw(sim: Sim, http: aiohttp.ClientSession) -> None:
    received = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        await _raw_stream(sim, http, "cut:3", received)
    names = [name for name, _ in parse_sse(received.decode())]
    assert names == ["message_start", "content_block_start", "ping"]


async def test_cut_on_json_request_is_a_reset(sim: Sim) -> None:
    async with _forced(sim, "cut:2") as client:
        with pytest.raises(anthropic.APIConnectionError):
            await client.messages.create(**body())


async def test_stream_error_event(sim: Sim, http: aiohttp.ClientSession) -> None:
    hdrs = headers(x_sim_fault="stream-error:5")
    async with http.post(
        f"{sim.url}/v1/messages", headers=hdrs, json={**body(), "stream": True}
    ) as resp:
        assert resp.status == 200
        events = parse_sse(await resp.text())
    assert len(events) == 6
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )


async def test_stream_error_sdk_sees_status_200(sim: Sim) -> None:
    async with _forced(sim, "stream-error:3", max_retries=2) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await _final(client, stream=True)
    assert info.value.status_code == 200
    assert sim.state.stats.by_endpoint["messages"] == 1  # not retried


async def test_slow_first_byte(sim: Sim, http: aiohttp.ClientSession) -> None:
    began = time.monotonic()
    async with http.post(
        f"{sim.url}/v1/messages", headers=headers(x_sim_fault="slow:0.15"), json=body()
    ) as resp:
        assert resp.status == 200
    assert 0.14 <= time.monotonic() - began < 2.0


async def test_bad_fault_header_is_400(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{sim.url}/v1/messages", headers=headers(x_sim_fault="meteor"), json=body()
    ) as resp:
        assert resp.status == 400


async def _outcomes(sim: Sim, n: int) -> list[str]:
    out: list[str] = []
    async with sim.client() as client:
        for _ in range(n):
            try:
                async with client.messages.stream(**body(max_tokens=30)) as stream:
                    await stream.get_final_message()
                out.append("ok")
            except anthropic.APIStatusError as exc:
                out.append(str(exc.status_code))
            except Exception as exc:  # a cut or reset surfaces as a transport error
                out.append(type(exc).__name__)
    return out


async def test_seeded_mix_is_reproducible(start_sim: StartSim) -> None:
    rates = FaultRates.mix(0.6)
    first = await _outcomes(await start_sim(seed=7, faults=rates, slow_first_byte=0.0), 40)
    second = await _outcomes(await start_sim(seed=7, faults=rates, slow_first_byte=0.0), 40)
    other = await _outcomes(await start_sim(seed=8, faults=rates, slow_first_byte=0.0), 40)
    assert first == second
    assert first != other
    assert "ok" in first
    assert len(set(first)) >= 4  # a real mix of kinds


async def test_stats_and_reset(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with sim.client() as client:
        await client.messages.create(**body())
        await client.messages.count_tokens(model=body()["model"], messages=body()["messages"])
    async with _forced(sim, "529") as client:
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(**body())
    data = await _stats(sim, http)
    assert data["requests"] == 3
    assert data["by_endpoint"] == {"messages": 2, "count_tokens": 1}
    assert data["faults"] == {"529": 1}
    assert data["faults_total"] == 1
    assert data["by_status"] == {"200": 2, "529": 1}
    assert data["in_flight"] == 0
    async with http.post(f"{sim.url}/sim/stats/reset") as resp:
        assert (await resp.json())["requests"] == 0
    assert (await _stats(sim, http))["faults"] == {}


async def test_max_in_flight(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with _forced(sim, "slow:0.1") as client:
        await asyncio.gather(*(client.messages.create(**body()) for _ in range(4)))
    data = await _stats(sim, http)
    assert data["max_in_flight"] == 4
    assert data["in_flight"] == 0
