"""The official SDK works unchanged through the gateway, streaming and not."""

from __future__ import annotations

import aiohttp
import anthropic
import pytest

from claude_proxy.config import RetrySettings
from claude_proxy.server import RunningServer
from tests.conftest import SIM_KEY, StartGateway
from tests.helpers import API_HEADERS, message_body
from tests.netcut import REFUSE, NetCut
from tests.sse import parse_events, without_ids


def sdk(server: RunningServer, key: str = "client-key") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.url, api_key=key, max_retries=0)


PROMPTS = [
    dict(max_tokens=300, messages=[{"role": "user", "content": "Tell me about gateways."}]),
    dict(max_tokens=7, messages=[{"role": "user", "content": "A cut-short answer"}]),
    dict(
        max_tokens=200,
        system="You are terse.",
        stop_sequences=["the"],
        messages=[{"role": "user", "content": "Stop early please"}],
    ),
]


@pytest.mark.parametrize("params", PROMPTS)
async def test_sdk_message_through_gateway_equals_direct(
    sim: RunningServer, gateway: RunningServer, params: dict
) -> None:
    direct = await sdk(sim, SIM_KEY).messages.create(model="claude-haiku-4-5", **params)
    proxied = await sdk(gateway).messages.create(model="claude-haiku-4-5", **params)
    assert without_ids(proxied.model_dump()) == without_ids(direct.model_dump())
    assert proxied.content[0].text  # type: ignore[union-attr]
    assert proxied._request_id and proxied._request_id.startswith("req_")


@pytest.mark.parametrize("params", PROMPTS)
async def test_sdk_stream_through_gateway_equals_direct(
    sim: RunningServer, gateway: RunningServer, params: dict
) -> None:
    async def collect(client: anthropic.AsyncAnthropic) -> tuple[list, object]:
        async with client.messages.stream(model="claude-haiku-4-5", **params) as stream:
            events = [without_ids(event.model_dump()) async for event in stream]
            final = await stream.get_final_message()
        return events, without_ids(final.model_dump())

    direct_events, direct_final = await collect(sdk(sim, SIM_KEY))
    proxied_events, proxied_final = await collect(sdk(gateway))
    assert proxied_events == direct_events
    assert proxied_final == direct_final
    assert len(proxied_events) > 5


async def test_raw_sse_bytes_are_the_upstream_events_in_order(
    sim: RunningServer, gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    body = message_body("Stream me", stream=True)
    async with http.post(
        f"{sim.url}/v1/messages", json=body, headers={**API_HEADERS, "x-api-key": SIM_KEY}
    ) as r:
        direct = parse_events(await r.read())
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=API_HEADERS) as r:
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["request-id"].startswith("req_")
        proxied = parse_events(await r.read())
    assert proxied[0][0] == "message_start"
    assert proxied[-1][0] == "message_stop"
    assert without_ids(proxied) == without_ids(direct)


async def test_stream_events_reach_the_client_before_the_answer_is_finished(
    start_sim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    # A paced answer: 400 tokens at ~1 ms each. The first event must arrive long
    # before the last one is generated, i.e. the gateway does not buffer the stream.
    sim = await start_sim(speed=1.0)
    gateway = await start_gateway(sim.url)
    body = message_body("Pace me", stream=True, max_tokens=400)
    headers = {**API_HEADERS, "x-sim-answer-tokens": "400"}
    loop = __import__("asyncio").get_running_loop()
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
        arrivals = []
        async for _chunk in r.content.iter_any():
            arrivals.append(loop.time())
    assert len(arrivals) > 10
    assert arrivals[-1] - arrivals[0] > 0.2


async def test_count_tokens_and_models_through_gateway(
    sim: RunningServer, gateway: RunningServer
) -> None:
    messages = [{"role": "user", "content": "How many tokens is this?"}]
    direct = await sdk(sim, SIM_KEY).messages.count_tokens(
        model="claude-haiku-4-5", messages=messages
    )
    proxied = await sdk(gateway).messages.count_tokens(model="claude-haiku-4-5", messages=messages)
    assert proxied.input_tokens == direct.input_tokens > 0

    direct_models = [m.id async for m in sdk(sim, SIM_KEY).models.list()]
    proxied_models = [m.id async for m in sdk(gateway).models.list()]
    assert proxied_models == direct_models and "claude-haiku-4-5" in " ".join(proxied_models)
    model = await sdk(gateway).models.retrieve(proxied_models[0])
    assert model.id == proxied_models[0]


async def test_both_auth_styles_are_accepted_and_replaced(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    for auth in ({"x-api-key": "whatever"}, {"authorization": "Bearer whatever"}):
        headers = {"content-type": "application/json", "anthropic-version": "2026-10-21", **auth}
        async with http.post(
            f"{gateway.url}/v1/messages", json=message_body(), headers=headers
        ) as r:
            assert r.status == 200, await r.text()


async def test_transparent_mode_forwards_the_client_key(
    sim: RunningServer, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(sim.url, api_key=None)
    ok = await sdk(gateway, SIM_KEY).messages.create(**message_body())
    assert ok.stop_reason
    with pytest.raises(anthropic.AuthenticationError) as info:
        await sdk(gateway, "wrong-key").messages.create(**message_body())
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_api_version_rules_pass_through(gateway: RunningServer) -> None:
    # anthropic-version is forwarded untouched: 2026-10-21 refuses temperature upstream.
    client = sdk(gateway).with_options(default_headers={"anthropic-version": "2026-10-21"})
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        await client.messages.create(**message_body(), extra_body={"temperature": 0.5})


async def test_model_reads_go_through_the_forwarder_and_are_retried(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    cut = NetCut(sim.url)
    gateway = await start_gateway(
        await cut.start(), retry=RetrySettings(base_delay=0.01, max_delay=0.05)
    )
    try:
        # aiohttp itself retries an idempotent request once on a refused connection.
        cut.plan.extend([REFUSE, REFUSE, None])
        async with http.get(f"{gateway.url}/v1/models?limit=2", headers=API_HEADERS) as r:
            assert r.status == 200
            assert r.headers["x-proxy-attempts"] == "2"
            assert len((await r.json())["data"]) >= 2
    finally:
        await cut.stop()
