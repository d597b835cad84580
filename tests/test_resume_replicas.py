"""Resumable streams across replicas: two gateway processes sharing one Redis.

200 streams, each dropped by its client at a random point and resumed through a
random replica (about half through the one that did not start it); the joined
text must equal the uninterrupted answer every time, with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio

from claude_proxy.server import RunningServer
from tests.conftest import SIM_KEY, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.processes import gateway_process
from tests.state.redis_fixtures import key_prefix, redis_url
from tests.streaming.test_resume import events_with_ids, text_of

__all__ = ["key_prefix", "redis_url"]

STREAMS = 200
HEADERS = {**API_HEADERS, "x-api-key": "key-a", "x-sim-answer-tokens": "80"}


def config(sim: RunningServer, redis_url: str, prefix: str) -> dict[str, Any]:
    return {
        "upstreams": [{"name": "sim", "base_url": sim.url, "api_key": SIM_KEY}],
        "state": redis_url,
        "admission": {"key_prefix": prefix + "admission:"},
        "streams": {"replay": {"key_prefix": prefix + "replay:"}},
        "tenants": [
            {"name": "team-a", "keys": ["key-a"], "queue_timeout": 60},
            {"name": "team-b", "keys": ["key-b"]},
        ],
        "upstream_max_concurrent": 64,
        "log": {"level": "info"},  # the address is logged at info
    }


async def test_two_hundred_dropped_streams_resume_exactly_on_either_replica(
    start_sim: StartSim, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    sim = await start_sim(speed=0.1)  # ~25 ms a stream: many resumes arrive mid-generation
    settings = config(sim, redis_url, key_prefix)
    rng = random.Random(20261201)
    async with AsyncExitStack() as stack:
        first, second = await asyncio.gather(
            stack.enter_async_context(gateway_process(settings, tmp_path)),
            stack.enter_async_context(gateway_process(settings, tmp_path)),
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        bodies = [message_body(f"stream {i}", stream=True, max_tokens=200) for i in range(STREAMS)]
        sim_headers = {**HEADERS, "x-api-key": SIM_KEY}

        async def uninterrupted(body: dict[str, Any]) -> list[Any]:
            async with http.post(f"{sim.url}/v1/messages", json=body, headers=sim_headers) as r:
                return events_with_ids(await r.read())

        reference = await asyncio.gather(*(uninterrupted(body) for body in bodies))
        joined_text: dict[int, str] = {}
        crossed = 0
        limit = asyncio.Semaphore(20)

        async def one(i: int, body: dict[str, Any]) -> None:
            nonlocal crossed
            async with limit:
                cut = rng.randint(1, len(reference[i]) - 1)
                origin, other = (first, second) if i % 2 else (second, first)
                resume_at = other if rng.random() < 0.5 else origin
                crossed += resume_at is other
                received = b""
                # Its own session: the connection is dropped when it closes.
                async with (
                    aiohttp.ClientSession() as own,
                    own.post(f"{origin.url}/v1/messages", json=body, headers=HEADERS) as r,
                ):
                    assert r.status == 200
                    stream_id = r.headers["x-proxy-stream-id"]
                    while received.count(b"\n\n") < cut:
                        chunk = await r.content.readany()
                        assert chunk, "the stream ended before the cut"
                        received += chunk
                before = events_with_ids(b"\n\n".join(received.split(b"\n\n")[:cut]) + b"\n\n")
                url = f"{resume_at.url}/v1/streams/{stream_id}"
                async with http.get(url, headers={**HEADERS, "Last-Event-ID": before[-1][0]}) as r:
                    assert r.status == 200, await r.text()
                    after = events_with_ids(await r.read())
                joined = before + after
                ids = [event_id for event_id, _, _ in joined]
                assert ids == [f"{stream_id}:{n}" for n in range(1, len(joined) + 1)]
                assert joined[-1][1] == "message_stop"
                joined_text[i] = text_of(joined)

        await asyncio.gather(*(one(i, body) for i, body in enumerate(bodies)))
        # Another tenant cannot resume through either replica.
        async with http.post(f"{first.url}/v1/messages", json=bodies[0], headers=HEADERS) as r:
            stream_id = r.headers["x-proxy-stream-id"]
            await r.read()
        for replica in (first, second):
            async with http.get(
                f"{replica.url}/v1/streams/{stream_id}", headers={**HEADERS, "x-api-key": "key-b"}
            ) as r:
                assert r.status == 403
    expected = [text_of(events) for events in reference]
    assert [joined_text[i] for i in range(STREAMS)] == expected
    assert len(set(expected)) == STREAMS  # 200 different answers, not one repeated
    assert 60 <= crossed <= 140  # about half were resumed through the other replica


async def test_a_live_stream_is_followed_through_the_other_replica(
    start_sim: StartSim, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """Resumed on B while A still generates: the backlog, then the live tail, then the end."""
    sim = await start_sim(speed=1.0)  # ~1 ms a token: 600 tokens take ~0.75 s
    settings = config(sim, redis_url, key_prefix)
    headers = {**HEADERS, "x-sim-answer-tokens": "600"}
    body = message_body("a long answer", stream=True, max_tokens=1000)
    async with AsyncExitStack() as stack:
        first, second = await asyncio.gather(
            stack.enter_async_context(gateway_process(settings, tmp_path)),
            stack.enter_async_context(gateway_process(settings, tmp_path)),
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        received = b""
        async with (
            aiohttp.ClientSession() as own,
            own.post(f"{first.url}/v1/messages", json=body, headers=headers) as r,
        ):
            stream_id = r.headers["x-proxy-stream-id"]
            while received.count(b"\n\n") < 5:
                received += await r.content.readany()
        before = events_with_ids(b"\n\n".join(received.split(b"\n\n")[:5]) + b"\n\n")
        chunks: list[bytes] = []
        async with http.get(
            f"{second.url}/v1/streams/{stream_id}",
            headers={**headers, "Last-Event-ID": before[-1][0]},
        ) as r:
            async for chunk in r.content.iter_any():
                chunks.append(chunk)
        after = events_with_ids(b"".join(chunks))
    assert len(chunks) > 3  # the tail arrived live, over time, not as one finished backlog
    joined = before + after
    assert [e[0] for e in joined] == [f"{stream_id}:{n}" for n in range(1, len(joined) + 1)]
    assert joined[-1][1] == "message_stop"


async def test_a_stream_the_upstream_refused_leaves_no_live_writer_in_redis(
    start_sim: StartSim, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """The replay stream is begun once the upstream has answered: a refused call makes
    none, and nothing is left for the writer heartbeat to keep alive for ever."""
    sim = await start_sim(speed=0)
    settings = config(sim, redis_url, key_prefix)
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/bmp", "data": "eA=="},
    }
    body = {
        **message_body("what is this?", stream=True),
        "messages": [{"role": "user", "content": [image]}],
    }
    async with AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(gateway_process(settings, tmp_path))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        async with http.post(f"{gateway.url}/v1/messages", json=body, headers=HEADERS) as r:
            assert r.status == 400
            assert (await r.json())["error"]["type"] == "invalid_request_error"
        async with http.post(
            f"{gateway.url}/v1/messages", json=message_body("hi", stream=True), headers=HEADERS
        ) as r:
            assert r.status == 200
            await r.read()
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            streams = [key async for key in client.scan_iter(f"{key_prefix}replay:*:meta")]
            writers = [key async for key in client.scan_iter(f"{key_prefix}replay:*:writer")]
        finally:
            await client.aclose()
        assert len(streams) == 1  # the answered one only
        assert writers == []  # and it ended
