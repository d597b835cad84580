"""Stream relay: broken upstream streams end honestly; a gone client stops the upstream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import anthropic
import pytest

from claude_proxy.config import RetrySettings, StreamSettings
from claude_proxy.server import RunningServer
from claude_proxy.tokens import estimate_text_tokens
from tests.conftest import SIM_KEY, StartGateway
from tests.helpers import API_HEADERS, message_body
from tests.scripted import ScriptedUpstream, sse, text_part
from tests.sse import parse_events


@pytest.fixture
def gateway(plain_gateway: RunningServer) -> RunningServer:
    """These tests look at what one upstream attempt does: no retries, no healing."""
    return plain_gateway


async def stream_events(
    http: aiohttp.ClientSession, gateway: RunningServer, fault: str
) -> list[tuple[str, dict]]:
    headers = {**API_HEADERS, "x-sim-fault": fault, "x-sim-answer-tokens": "200"}
    body = message_body(stream=True, max_tokens=400)
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
        assert r.status == 200
        return parse_events(await r.read())


async def test_cut_stream_ends_with_an_error_event_never_a_fake_stop(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    events = await stream_events(http, gateway, "cut:4")
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert "message_stop" not in names
    assert names[-1] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert names.count("error") == 1


async def test_upstream_error_event_is_relayed_as_is(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    events = await stream_events(http, gateway, "stream-error:3")
    assert [name for name, _ in events][-1] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert [name for name, _ in events].count("error") == 1


async def test_sdk_raises_on_a_cut_stream(gateway: RunningServer) -> None:
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError):
        async with client.messages.stream(
            **message_body(), extra_headers={"x-sim-fault": "cut:5"}
        ) as stream:
            await stream.get_final_message()


async def wait_until_idle(
    http: aiohttp.ClientSession, sim: RunningServer, limit: float = 5.0
) -> dict:
    """Poll the simulator's stats until nothing is in flight (bounded, no fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        async with http.get(f"{sim.url}/sim/stats") as r:
            stats = await r.json()
        if stats["in_flight"] == 0 or asyncio.get_running_loop().time() > deadline:
            return stats
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("stream", [True, False])
async def test_client_disconnect_cancels_the_upstream_call(
    start_sim, start_gateway: StartGateway, http: aiohttp.ClientSession, stream: bool
) -> None:
    """With no resume grace, a client that leaves stops the generation at once."""
    sim = await start_sim(speed=1.0)  # ~1 ms per token: 20,000 tokens take ~20 s
    gateway = await start_gateway(sim.url, streams=StreamSettings(resume_grace=0))
    await disconnect_during_generation(gateway, stream)
    stats = await wait_until_idle(http, sim)
    assert stats["in_flight"] == 0
    assert stats["requests"] == 1


async def test_a_left_stream_generates_through_the_grace_then_stops(
    start_sim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """The upstream call outlives the client for resume_grace seconds, then is cancelled."""
    sim = await start_sim(speed=1.0)
    gateway = await start_gateway(sim.url, streams=StreamSettings(resume_grace=0.5))
    left_at = asyncio.get_running_loop().time()
    await disconnect_during_generation(gateway, stream=True)
    stats = await wait_until_idle(http, sim, limit=0.2)
    assert stats["in_flight"] == 1  # still generating, waiting for a resume
    stats = await wait_until_idle(http, sim)
    assert stats["in_flight"] == 0
    assert asyncio.get_running_loop().time() - left_at >= 0.5


async def disconnect_during_generation(gateway: RunningServer, stream: bool) -> None:
    headers = {**API_HEADERS, "x-sim-answer-tokens": "20000"}
    body = message_body(stream=stream, max_tokens=32000, model="claude-sonnet-4-6")
    async with aiohttp.ClientSession() as client:
        if stream:
            async with client.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
                await r.content.readany()  # the stream has started
        else:
            timeout = aiohttp.ClientTimeout(total=0.3)
            with pytest.raises(asyncio.TimeoutError):
                await client.post(
                    f"{gateway.url}/v1/messages", json=body, headers=headers, timeout=timeout
                )


# -- the relay loop against a scripted upstream: each path of a break, deterministic ------

FAST = RetrySettings(base_delay=0.01, max_delay=0.05)


async def scripted_stream(
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    upstream: ScriptedUpstream,
    **body: Any,
) -> list[tuple[str, dict]]:
    url = await upstream.start()
    try:
        gateway = await start_gateway(url, retry=FAST)
        request = message_body(stream=True, **body)
        async with http.post(f"{gateway.url}/v1/messages", json=request, headers=API_HEADERS) as r:
            assert r.status == 200
            return parse_events(await r.read())
    finally:
        await upstream.stop()


def text_of(events: list[tuple[str, dict]]) -> str:
    return "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")


async def test_an_end_without_message_stop_is_healed_from_the_last_whole_word(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    upstream = ScriptedUpstream(
        text_part("Hello wor", stop=None),  # the body ends cleanly, mid-word
        text_part(" world, friend.", output_tokens=4),
    )
    events = await scripted_stream(start_gateway, http, upstream, max_tokens=100)
    assert text_of(events) == "Hello world, friend."
    healed = upstream.bodies[1]
    # The prefill stops at the last whole word; the client's "wor" is skipped in the reply.
    assert healed["messages"][-1] == {"role": "assistant", "content": "Hello"}
    spent = estimate_text_tokens("Hello wor")
    assert healed["max_tokens"] == 100 - spent
    assert events[-2][1]["usage"]["output_tokens"] == spent + 4


async def test_an_error_event_that_is_final_is_not_healed(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    error = {"error": {"type": "invalid_request_error", "message": "bad"}}
    upstream = ScriptedUpstream(text_part("Hello", stop=None) + sse("error", error))
    events = await scripted_stream(start_gateway, http, upstream)
    assert [n for n, _ in events][-2:] == ["content_block_delta", "error"]
    assert events[-1][1]["error"]["type"] == "invalid_request_error"
    assert len(upstream.bodies) == 1


async def test_a_stream_cut_after_its_message_delta_is_ended_whole(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    whole = text_part("Done.", output_tokens=2)
    upstream = ScriptedUpstream(whole[: whole.index(b"event: message_stop")])
    events = await scripted_stream(start_gateway, http, upstream)
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    assert len(upstream.bodies) == 1


async def test_when_the_estimate_has_spent_max_tokens_the_answer_ends_there(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    upstream = ScriptedUpstream(text_part("One two three four five six", stop=None))
    events = await scripted_stream(start_gateway, http, upstream, max_tokens=5)
    assert [n for n, _ in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert delta["usage"]["output_tokens"] == 5  # a part cannot have used more than it asked
    assert len(upstream.bodies) == 1


async def test_a_model_that_refuses_prefill_is_healed_with_a_turn_and_remembered(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    # claude-mythos-preview refuses prefill, but the gateway's table does not say so.
    gateway = await start_gateway(sim.url, retry=FAST)
    for attempt, expected_requests in ((1, 3), (2, 2)):
        body = message_body(f"Mythos {attempt}", model="claude-mythos-preview", stream=True)
        sim_headers = {**API_HEADERS, "x-api-key": SIM_KEY, "x-sim-answer-tokens": "80"}
        async with http.post(f"{sim.url}/v1/messages", json=body, headers=sim_headers) as r:
            expected = text_of(parse_events(await r.read()))
        async with http.post(f"{sim.url}/sim/stats/reset") as r:
            assert r.status == 200
        headers = {
            **API_HEADERS,
            "x-sim-answer-tokens": "80",
            "x-sim-fault": "cut:8",
            "x-sim-fault-times": "1",
            "x-sim-fault-key": uuid.uuid4().hex,
        }
        async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
            events = parse_events(await r.read())
        assert text_of(events) == expected
        async with http.get(f"{sim.url}/sim/stats") as r:
            # Cut, then (the first time only) a refused prefill, then the continue turn.
            assert (await r.json())["requests"] == expected_requests
