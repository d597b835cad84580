"""Bursts of deltas relayed as runs: what the client sees is what it saw one event at a time.

An upstream that writes a long answer at once (the scripted one here writes the whole
body in one go) makes the relay hand each burst of deltas over as one run. These tests
hold the client's view to the per-event contract: an id on every event, numbered without
a gap past the sink's table of numbers, byte-identical events, resumes that start inside
a run (in memory, and through Redis from another replica), healing after a run, and one
WebSocket frame per event.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from claude_proxy.config import RetrySettings
from claude_proxy.server import RunningServer
from claude_proxy.streaming.sse import EventSplitter
from tests.conftest import StartGateway
from tests.helpers import API_HEADERS, message_body
from tests.scripted import ScriptedUpstream, sse, text_part
from tests.state.redis_fixtures import key_prefix, redis_url
from tests.streaming.test_resume import events_with_ids, resume, text_of

__all__ = ["key_prefix", "redis_url"]  # fixtures, for the Redis case

FAST = RetrySettings(base_delay=0.01, max_delay=0.05)
WORDS = [f"w{i} " for i in range(300)]


async def start(
    start_gateway: StartGateway, *replies: bytes, **settings: object
) -> tuple[RunningServer, ScriptedUpstream]:
    upstream = ScriptedUpstream(*replies)
    url = await upstream.start()
    return await start_gateway(url, retry=FAST, **settings), upstream


async def read_stream(
    http: aiohttp.ClientSession, gateway: RunningServer, **body: object
) -> tuple[str, bytes]:
    request = message_body(stream=True, **body)
    async with http.post(f"{gateway.url}/v1/messages", json=request, headers=API_HEADERS) as r:
        assert r.status == 200, await r.text()
        return r.headers["x-proxy-stream-id"], await r.read()


def upstream_events(body: bytes) -> list[bytes]:
    return [event.raw for event in EventSplitter().feed(body)]


def client_events(raw: bytes, stream_id: str) -> list[bytes]:
    """Each event the client got, its id line checked and taken off."""
    events = [part + b"\n\n" for part in raw.split(b"\n\n") if part]
    for seq, event in enumerate(events, start=1):
        id_line = f"id: {stream_id}:{seq}\n".encode()
        assert event.startswith(id_line), (seq, event[:80])
    return [event.split(b"\n", 1)[1] for event in events]


async def test_a_burst_reaches_the_client_as_the_upstream_wrote_it_with_an_id_each(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    body = text_part(*WORDS, output_tokens=300)
    gateway, _ = await start(start_gateway, body)
    stream_id, raw = await read_stream(http, gateway)
    assert client_events(raw, stream_id) == upstream_events(body)


async def test_ids_stay_consecutive_past_the_table_of_numbers(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    body = text_part(*(f"{i} " for i in range(8300)), output_tokens=8300)
    gateway, _ = await start(start_gateway, body)
    stream_id, raw = await read_stream(http, gateway, max_tokens=9000)
    assert client_events(raw, stream_id) == upstream_events(body)  # 8,305 events


@pytest.mark.parametrize("state", ["memory", "redis"])
async def test_a_resume_from_inside_a_run_gets_exactly_the_rest(
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    state: str,
    request: pytest.FixtureRequest,
) -> None:
    body = text_part(*WORDS, output_tokens=300)
    settings: dict[str, object] = {}
    if state == "redis":
        prefix = request.getfixturevalue("key_prefix")
        settings = {
            "state": request.getfixturevalue("redis_url"),
            "streams": {"replay": {"key_prefix": prefix}},
            "admission": {"key_prefix": prefix + "admission:"},
        }
    gateway, upstream = await start(start_gateway, body, **settings)
    reader = gateway
    if state == "redis":  # the resumes go to another replica: it reads what this one wrote
        reader = await start_gateway(upstream.url, retry=FAST, **settings)
    stream_id, raw = await read_stream(http, gateway)
    whole = events_with_ids(raw)
    for cut in (1, 2, 3, 50, 150, 301, len(whole) - 1):
        async with await resume(http, reader, stream_id, whole[cut - 1][0]) as r:
            assert r.status == 200
            rest = events_with_ids(await r.read())
        assert whole[:cut] + rest == whole, cut
    async with await resume(http, reader, stream_id, None) as r:
        assert await r.read() == raw  # from the start: the same bytes, ids included


async def test_a_break_after_runs_is_healed_from_all_the_text_they_held(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    words = WORDS[:120]
    gateway, upstream = await start(
        start_gateway,
        text_part(*words, "fo", stop=None),  # ends cleanly mid-word, before message_stop
        text_part(" fox jumps.", output_tokens=3),  # the reply repeats the cut word
    )
    stream_id, raw = await read_stream(http, gateway, max_tokens=2000)
    events = events_with_ids(raw)
    assert [event_id for event_id, _, _ in events] == [
        f"{stream_id}:{seq}" for seq in range(1, len(events) + 1)
    ]
    assert text_of(events) == "".join(words) + "fox jumps."  # "fo" not twice
    healed = upstream.bodies[1]
    assert healed["messages"][-1] == {"role": "assistant", "content": "".join(words).rstrip()}


async def test_a_websocket_gets_one_frame_per_event_of_a_run(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    body = text_part(*WORDS, output_tokens=300)
    gateway, _ = await start(start_gateway, body)
    frames = []
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=API_HEADERS) as ws:
        request = {"id": 1, "type": "request", "body": message_body(stream=True)}
        await ws.send_str(orjson.dumps(request).decode())
        while not frames or frames[-1]["event"]["type"] != "message_stop":
            frames.append(orjson.loads((await ws.receive()).data))
    expected = [event.json() for event in EventSplitter().feed(body)]
    assert [frame["event"] for frame in frames] == expected


async def test_an_error_after_a_burst_ends_the_stream_after_all_of_it(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    error = {"error": {"type": "invalid_request_error", "message": "bad"}}
    gateway, upstream = await start(
        start_gateway, text_part(*WORDS, stop=None) + sse("error", error)
    )
    stream_id, raw = await read_stream(http, gateway)
    events = events_with_ids(raw)
    assert [event_id for event_id, _, _ in events] == [
        f"{stream_id}:{seq}" for seq in range(1, len(events) + 1)
    ]
    assert text_of(events) == "".join(WORDS)
    assert [name for _, name, _ in events][-1] == "error"
    assert len(upstream.bodies) == 1  # a final error is not healed


async def test_a_healing_part_that_comes_in_a_burst_is_spliced_event_by_event(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    rest = [" fox", *WORDS[120:200]]  # the reply repeats the cut word, then goes on at length
    gateway, _ = await start(
        start_gateway,
        text_part(*WORDS[:120], "fo", stop=None),
        text_part(*rest, output_tokens=81),
    )
    stream_id, raw = await read_stream(http, gateway, max_tokens=2000)
    events = events_with_ids(raw)
    assert [event_id for event_id, _, _ in events] == [
        f"{stream_id}:{seq}" for seq in range(1, len(events) + 1)
    ]
    assert text_of(events) == "".join(WORDS[:120]) + "fox" + "".join(WORDS[120:200])
    names = [name for _, name, _ in events]
    assert names.count("message_start") == 1 and names.count("content_block_start") == 1
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert {data["index"] for _, name, data in events if name == "content_block_delta"} == {0}
