"""Resumable SSE through one gateway: ids on every event, exact replay, ownership."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest

from claude_proxy.config import StreamSettings
from claude_proxy.server import RunningServer
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.sse import parse_events

ANSWER = {"x-sim-answer-tokens": "120"}
HEADERS = {**API_HEADERS, **ANSWER}


def events_with_ids(raw: bytes) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, event name, data) of each event, in order."""
    out = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        event_id = ""
        for line in block.split(b"\n"):
            if line.startswith(b"id: "):
                event_id = line[4:].decode()
        ((name, data),) = parse_events(block + b"\n\n")
        out.append((event_id, name, data))
    return out


def text_of(events: list[tuple[str, str, dict[str, Any]]]) -> str:
    return "".join(
        data["delta"].get("text", "") for _, name, data in events if name == "content_block_delta"
    )


async def read_until_cut(
    gateway: RunningServer, body: dict[str, Any], cut_after: int, headers: dict[str, str]
) -> tuple[str, bytes]:
    """Start a stream, read ``cut_after`` events, then drop the connection."""
    received = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r,
    ):
        assert r.status == 200
        stream_id = r.headers["x-proxy-stream-id"]
        while received.count(b"\n\n") < cut_after:
            chunk = await r.content.readany()
            if not chunk:
                break
            received += chunk
    # Only whole events count as seen; the rest of the chunk was "lost in the network".
    seen = b"\n\n".join(received.split(b"\n\n")[:cut_after]) + b"\n\n"
    return stream_id, seen


async def resume(
    http: aiohttp.ClientSession,
    gateway: RunningServer,
    stream_id: str,
    last_event_id: str | None,
    headers: dict[str, str] = HEADERS,
) -> aiohttp.ClientResponse:
    extra = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    return await http.get(f"{gateway.url}/v1/streams/{stream_id}", headers={**headers, **extra})


@pytest.fixture
async def slow_gateway(start_sim: StartSim, start_gateway: StartGateway) -> RunningServer:
    """Generation takes ~0.1 s, so resumes often arrive while it is still running."""
    sim = await start_sim(speed=0.1)
    return await start_gateway(sim.url)


async def reference(gateway: RunningServer, http: aiohttp.ClientSession, body: dict) -> bytes:
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=HEADERS) as r:
        return await r.read()


async def test_every_event_carries_a_consecutive_id(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    body = message_body(stream=True, max_tokens=300)
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=HEADERS) as r:
        stream_id = r.headers["x-proxy-stream-id"]
        events = events_with_ids(await r.read())
    assert [event_id for event_id, _, _ in events] == [
        f"{stream_id}:{seq}" for seq in range(1, len(events) + 1)
    ]
    assert events[-1][1] == "message_stop"


async def test_random_disconnects_resume_without_gap_or_duplicate(
    slow_gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    rng = random.Random(7)
    bodies = [message_body(f"question {i}", stream=True, max_tokens=300) for i in range(30)]
    full = [events_with_ids(await reference(slow_gateway, http, body)) for body in bodies]

    async def one(body: dict[str, Any], expected: list) -> None:
        cut = rng.randint(1, len(expected) - 1)
        stream_id, seen = await read_until_cut(slow_gateway, body, cut, HEADERS)
        before = events_with_ids(seen)
        async with await resume(http, slow_gateway, stream_id, before[-1][0]) as r:
            assert r.status == 200
            after = events_with_ids(await r.read())
        joined = before + after
        assert [e[0] for e in joined] == [f"{stream_id}:{n}" for n in range(1, len(joined) + 1)]
        assert [name for _, name, _ in joined] == [name for _, name, _ in expected]
        assert text_of(joined) == text_of(expected)

    await asyncio.gather(
        *(one(body, expected) for body, expected in zip(bodies, full, strict=True))
    )


async def test_resume_after_completion_replays_the_rest(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    body = message_body(stream=True, max_tokens=300)
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=HEADERS) as r:
        stream_id = r.headers["x-proxy-stream-id"]
        whole = await r.read()
    async with await resume(http, gateway, stream_id, None) as r:
        assert r.status == 200 and r.headers["x-proxy-stream-id"] == stream_id
        assert await r.read() == whole  # from the start: the same bytes, ids included
    url = f"{gateway.url}/v1/streams/{stream_id}?last_event_id={stream_id}:3"
    async with http.get(url, headers=HEADERS) as r:  # the query form, for EventSource users
        assert events_with_ids(await r.read()) == events_with_ids(whole)[3:]


async def test_bad_resumes_are_clear_errors(
    start_gateway: StartGateway, sim: RunningServer, http: aiohttp.ClientSession
) -> None:
    tenants = [
        {"name": "team-a", "keys": ["key-a"]},
        {"name": "team-b", "keys": ["key-b"]},
    ]
    gateway = await start_gateway(sim.url, tenants=tenants)
    headers_a = {**HEADERS, "x-api-key": "key-a"}
    body = message_body(stream=True)
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers_a) as r:
        stream_id = r.headers["x-proxy-stream-id"]
        await r.read()

    async def error_of(response: aiohttp.ClientResponse) -> tuple[int, str]:
        async with response:
            return response.status, (await response.json())["error"]["type"]

    headers_b = {**HEADERS, "x-api-key": "key-b"}
    assert await error_of(await resume(http, gateway, stream_id, None, headers_b)) == (
        403,
        "permission_error",
    )
    unknown = "strm_" + "x" * 24
    assert await error_of(await resume(http, gateway, unknown, None, headers_a)) == (
        404,
        "not_found_error",
    )
    assert await error_of(await resume(http, gateway, "nonsense", None, headers_a)) == (
        404,
        "not_found_error",
    )
    for bad in ("strm_other:3", f"{stream_id}:x", "-1"):
        assert await error_of(await resume(http, gateway, stream_id, bad, headers_a)) == (
            400,
            "invalid_request_error",
        ), bad
    no_key = {k: v for k, v in HEADERS.items() if k != "x-api-key"}
    assert await error_of(await resume(http, gateway, stream_id, None, no_key)) == (
        401,
        "authentication_error",
    )


async def test_in_open_mode_another_api_key_cannot_resume(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    body = message_body(stream=True)
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=HEADERS) as r:
        stream_id = r.headers["x-proxy-stream-id"]
        await r.read()
    other = {**HEADERS, "x-api-key": "someone-else"}
    async with await resume(http, gateway, stream_id, None, other) as r:
        assert r.status == 403
    async with await resume(http, gateway, stream_id, None) as r:
        assert r.status == 200


async def test_streams_can_be_made_not_resumable(
    start_gateway: StartGateway, sim: RunningServer, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, streams=StreamSettings(resumable=False))
    body = message_body(stream=True)
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=HEADERS) as r:
        assert "x-proxy-stream-id" not in r.headers
        raw = await r.read()
    assert b"\nid: " not in raw and not raw.startswith(b"id: ")
    assert parse_events(raw)[-1][0] == "message_stop"


async def test_a_resumed_reader_keeps_an_abandoned_stream_alive(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """The grace restarts while a resumer reads; the stream finishes for it."""
    sim = await start_sim(speed=1.0)  # ~1 ms a token: 400 tokens take ~0.5 s
    gateway = await start_gateway(sim.url, streams=StreamSettings(resume_grace=0.2))
    body = message_body(stream=True, max_tokens=500)
    headers = {**HEADERS, "x-sim-answer-tokens": "400"}
    stream_id, seen = await read_until_cut(gateway, body, 4, headers)
    last_id = events_with_ids(seen)[-1][0]
    async with await resume(http, gateway, stream_id, last_id, headers) as r:
        after = events_with_ids(await r.read())
    assert after[0][0] == f"{stream_id}:5"
    assert after[-1][1] == "message_stop"  # not cancelled while this reader was attached


async def test_a_log_evicted_under_memory_pressure_costs_the_resume_never_the_answer(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    # With a small replay budget, concurrent long streams evict each other's logs. Before,
    # the evicted stream's next append raised and its client got a 200 that just stopped.
    sim = await start_sim(speed=0.05)  # fast, but slow enough for the three to overlap
    gateway = await start_gateway(sim.url, streams=StreamSettings(replay={"max_bytes": 50_000}))
    headers = {**API_HEADERS, "x-sim-answer-tokens": "2000"}

    async def one(n: int) -> tuple[list[tuple[str, str, dict[str, Any]]], str]:
        body = message_body(f"Long answer {n}", stream=True, max_tokens=4000)
        async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
            return events_with_ids(await r.read()), r.headers["x-proxy-stream-id"]

    answers = await asyncio.gather(*(one(n) for n in range(3)))
    for events, _ in answers:
        names = [name for _, name, _ in events]
        assert names[-1] == "message_stop" and "error" not in names
        assert events[-2][2]["delta"]["stop_reason"] == "end_turn"
    gone = 0
    for _, stream_id in answers:
        async with http.get(
            f"{gateway.url}/v1/streams/{stream_id}", headers={**API_HEADERS, "last-event-id": "0"}
        ) as r:
            gone += r.status == 404
    assert gone >= 1  # the budget really was too small for all three


async def test_a_last_event_id_past_the_end_is_a_clear_400(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    # It used to be an empty 200: a stream that ends without a word.
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(stream=True), headers=HEADERS
    ) as r:
        events = events_with_ids(await r.read())
        stream_id = r.headers["x-proxy-stream-id"]
    last = len(events)
    for after, status in ((last - 1, 200), (last, 200), (last + 1, 400), (last + 500, 400)):
        async with http.get(
            f"{gateway.url}/v1/streams/{stream_id}",
            headers={**API_HEADERS, "last-event-id": f"{stream_id}:{after}"},
        ) as r:
            assert r.status == status, after
            if status == 400:
                error = (await r.json())["error"]
                assert error["type"] == "invalid_request_error"
                assert f"{stream_id}:{last}" in error["message"]
            else:
                assert len(events_with_ids(await r.read())) == last - after
