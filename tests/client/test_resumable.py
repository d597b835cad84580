"""The resuming client helper: the official SDK -> a network blip -> the real gateway.

``NetCut`` sits between the SDK and a gateway in front of the simulator and cuts
connections after planned numbers of events; the helper must hand the
application one uninterrupted answer, exactly the simulator's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import pytest

from claude_proxy.client import ResumableStream, StreamError, StreamInterrupted, stream_text
from claude_proxy.config import RetrySettings, StreamSettings
from claude_proxy.replay import ReplaySettings
from claude_proxy.server import RunningServer
from tests.conftest import SIM_KEY, StartGateway
from tests.helpers import API_HEADERS
from tests.netcut import NetCut
from tests.sse import parse_events, without_ids

ANSWER_TOKENS = "200"
PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 400,
    "messages": [{"role": "user", "content": "Tell me about resumable streams"}],
    "extra_headers": {"x-sim-answer-tokens": ANSWER_TOKENS},
}

Connect = Callable[..., Awaitable[tuple[anthropic.AsyncAnthropic, NetCut]]]


@pytest.fixture
async def reference(sim: RunningServer, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    """The simulator's own events for PARAMS, asked directly."""
    body = {k: v for k, v in PARAMS.items() if k != "extra_headers"} | {"stream": True}
    headers = {**API_HEADERS, "x-api-key": SIM_KEY, "x-sim-answer-tokens": ANSWER_TOKENS}
    async with http.post(f"{sim.url}/v1/messages", json=body, headers=headers) as r:
        return [data for _, data in parse_events(await r.read())]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )


@pytest.fixture
async def connect(start_gateway: StartGateway, sim: RunningServer) -> AsyncIterator[Connect]:
    """A gateway (``fields`` as Settings), a NetCut in front of it, an SDK client on that."""
    cuts: list[NetCut] = []
    clients: list[anthropic.AsyncAnthropic] = []

    async def start(*plan: int | None, **fields: Any) -> tuple[anthropic.AsyncAnthropic, NetCut]:
        gateway = await start_gateway(sim.url, **fields)
        cut = NetCut(gateway.url)
        cut.plan.extend(plan)
        cuts.append(cut)
        client = anthropic.AsyncAnthropic(
            api_key="sk-tenant-a", base_url=await cut.start(), max_retries=0
        )
        clients.append(client)
        return client, cut

    yield start
    for client in clients:
        await client.close()
    for cut in cuts:
        await cut.stop()


def resumable(client: anthropic.AsyncAnthropic, **options: Any) -> ResumableStream:
    return ResumableStream(client, PARAMS, backoff=0.001, max_backoff=0.01, **options)


async def read_text(stream: ResumableStream) -> str:
    async with stream:
        return "".join([text async for text in stream.text_stream])


async def test_an_unbroken_stream_is_passed_through(
    connect: Connect, reference: list[dict[str, Any]]
) -> None:
    client, _ = await connect()
    stream = resumable(client)
    assert await read_text(stream) == text_of(reference)
    assert stream.resumes == 0 and stream.stream_id is not None
    assert stream.last_event_id == f"{stream.stream_id}:{len(reference)}"
    message = stream.message
    assert message is not None
    assert message.stop_reason == reference[-2]["delta"]["stop_reason"]
    assert stream.usage is not None
    assert stream.usage.output_tokens == reference[-2]["usage"]["output_tokens"]


async def test_a_dropped_connection_is_resumed_after_the_last_event(
    connect: Connect, reference: list[dict[str, Any]]
) -> None:
    client, cut = await connect(10)
    stream = resumable(client)
    events = [event async for event in stream]
    assert without_ids(events) == without_ids(reference)  # each event once, in order
    assert cut.cuts == 1 and stream.resumes == 1
    final = await stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == text_of(reference)


async def test_repeated_drops_are_ridden_out(
    connect: Connect, reference: list[dict[str, Any]]
) -> None:
    # 0: a resumed connection that dies right after its headers.
    client, cut = await connect(3, 0, 7, 1, 20)
    stream = resumable(client)
    assert without_ids([event async for event in stream]) == without_ids(reference)
    assert cut.cuts == 5
    assert stream.resumes == 5  # the headers-only connection counts as a resume too


async def test_a_drop_before_the_first_event_resumes_from_the_start(
    connect: Connect, reference: list[dict[str, Any]]
) -> None:
    client, _ = await connect(0)
    stream = resumable(client)
    assert await read_text(stream) == text_of(reference)
    assert stream.resumes == 1


async def test_stream_text_is_one_uninterrupted_text(
    connect: Connect, reference: list[dict[str, Any]]
) -> None:
    client, _ = await connect(5, 9)
    pieces = [text async for text in stream_text(client, **PARAMS)]
    assert "".join(pieces) == text_of(reference)


async def test_tenant_keys_resume_their_own_streams(
    connect: Connect, reference: list[dict[str, Any]]
) -> None:
    tenants = [{"name": "team-a", "keys": ["sk-tenant-a"]}]
    client, _ = await connect(12, tenants=tenants)
    assert await read_text(resumable(client)) == text_of(reference)


async def test_an_expired_stream_is_not_found(connect: Connect) -> None:
    streams = StreamSettings(replay=ReplaySettings(ttl_seconds=0.02))
    client, _ = await connect(5, streams=streams)
    stream = ResumableStream(client, PARAMS, backoff=0.2, max_backoff=0.2)
    with pytest.raises(anthropic.NotFoundError):
        await read_text(stream)


async def test_resuming_gives_up_after_max_retries(connect: Connect) -> None:
    client, cut = await connect(5, 0, 0, 0, 0, 0)
    with pytest.raises(StreamInterrupted, match="3 tries"):
        await read_text(resumable(client, max_retries=3))
    assert cut.connections == 4  # the stream, then three resumes that each broke


async def test_an_error_event_ends_the_stream_without_resuming(connect: Connect) -> None:
    client, cut = await connect(retry=RetrySettings(max_attempts=1, heal_streams=False))
    faulty = {**PARAMS["extra_headers"], "x-sim-fault": "stream-error:5"}
    params = {**PARAMS, "extra_headers": faulty}
    with pytest.raises(StreamError) as caught:
        await read_text(ResumableStream(client, params))
    assert caught.value.error_type == "overloaded_error"
    assert cut.connections == 1


async def test_without_a_stream_id_a_drop_cannot_be_resumed(connect: Connect) -> None:
    client, _ = await connect(5, streams=StreamSettings(resumable=False))
    stream = resumable(client)
    with pytest.raises(StreamInterrupted, match="not resumable"):
        await read_text(stream)
    assert stream.stream_id is None
