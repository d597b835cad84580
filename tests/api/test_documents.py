"""POST /v1/documents through the gateway, against the simulator: map-reduce, JSON and SSE."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from claude_proxy.documents import DocumentSettings
from claude_proxy.pii import PiiSettings
from claude_proxy.server import RunningServer
from claude_proxy.sim import JOURNAL
from claude_proxy.sim.state import STATE
from tests.conftest import StartGateway, StartSim
from tests.documents.test_split import mixed_document
from tests.sse import parse_events

MARKER = "☠unreadable-part☠"


def document_body(document: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "document": document,
        "instruction": "List the main points.",
        "chunk_tokens": 2000,
        "overlap_tokens": 100,
        "max_tokens": 100,
        **fields,
    }


async def post(
    http: aiohttp.ClientSession, gateway: RunningServer, body: dict[str, Any], **headers: str
) -> tuple[int, bytes]:
    # No anthropic-version: the sub-calls get one, clients of this endpoint need not send it.
    sent = {"x-api-key": "client-key", **headers}
    async with http.post(f"{gateway.url}/v1/documents", json=body, headers=sent) as r:
        return r.status, await r.read()


async def test_a_million_character_document_is_answered(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=2000)
    gateway = await start_gateway(sim.url)
    document = mixed_document(1_000_000)
    status, raw = await post(http, gateway, document_body(document, chunk_tokens=8000))
    assert status == 200, raw[:300]
    answer = orjson.loads(raw)
    assert answer["type"] == "message" and answer["content"][0]["text"]
    chunks = answer["document"]["chunks"]
    assert chunks > 50 and answer["document"]["missing_chunks"] == []
    # One call per part, then the reduce: nothing skipped, nothing sent twice.
    assert len(sim.runner.app[JOURNAL].entries) == answer["document"]["calls"] == chunks + 1
    # Usage is the sum of every call's, in tokens.
    assert answer["usage"]["input_tokens"] > 300_000


async def test_parts_are_mapped_in_order_and_reduced_into_one_answer(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=100)
    gateway = await start_gateway(sim.url)
    document = mixed_document(40_000)
    status, raw = await post(http, gateway, document_body(document))
    assert status == 200
    summary = orjson.loads(raw)["document"]
    bodies = [entry.body for entry in sim.runner.app[JOURNAL].entries]
    maps, final = bodies[:-1], bodies[-1]
    assert len(maps) == summary["chunks"] == summary["calls"] - 1
    # Every part was sent, each once; together they hold the whole document.
    prompts = sorted(b["messages"][0]["content"] for b in maps)
    indices = sorted(int(p.split('index="')[1].split('"')[0]) for p in prompts)
    assert indices == list(range(summary["chunks"]))
    reduce_prompt = final["messages"][0]["content"]
    positions = [reduce_prompt.index(f'<part index="{i}">') for i in range(summary["chunks"])]
    assert positions == sorted(positions)  # the reduce sees the parts in document order


async def test_a_part_that_always_fails_is_named_as_missing(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=100, fail_marker=MARKER)
    gateway = await start_gateway(sim.url)
    document = mixed_document(30_000)
    document = document[:15_000] + MARKER + document[15_000:]
    status, raw = await post(http, gateway, document_body(document))
    assert status == 200
    summary = orjson.loads(raw)["document"]
    assert len(summary["missing_chunks"]) == 1
    missing = summary["missing_chunks"][0]
    final = sim.runner.app[JOURNAL].entries[-1].body["messages"][0]["content"]
    assert f"Parts {missing} of the document could not be processed" in final
    # The failing part was tried more than once (the gateway's retries, then the map's).
    tries = [e for e in sim.runner.app[JOURNAL].entries if MARKER.encode() in e.raw]
    assert len(tries) >= 2


async def test_streamed_progress_then_one_message_stream(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim()
    gateway = await start_gateway(sim.url)
    status, raw = await post(http, gateway, document_body(mixed_document(30_000), stream=True))
    assert status == 200
    events = parse_events(raw)
    progress = [data for name, data in events if name == "document_progress"]
    stages = [p["stage"] for p in progress]
    chunks = progress[0]["chunks"]
    assert stages[0] == "split" and chunks > 1
    assert stages.count("chunk_started") == stages.count("chunk_done") == chunks
    assert "reduce_started" in stages and stages[-1] == "done"
    message = [name for name, _ in events if name != "document_progress"]
    assert message[0] == "message_start" and message[-1] == "message_stop"
    assert message.count("message_start") == 1


async def test_the_window_is_respected(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(speed=0.02)
    gateway = await start_gateway(
        sim.url,
        upstream_max_concurrent=2,
        documents=DocumentSettings(max_parallel=50),
    )
    status, _ = await post(http, gateway, document_body(mixed_document(30_000)))
    assert status == 200
    assert sim.runner.app[STATE].stats.max_in_flight <= 2


async def test_bad_requests_are_clear_400s(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim()
    gateway = await start_gateway(sim.url)
    for body, words in [
        ({"model": "claude-haiku-4-5", "instruction": "x"}, "document"),
        (document_body("text", chunk_tokens=10), "chunk_tokens"),
        (document_body("text", overlap_tokens=1500), "overlap_tokens"),
        (
            document_body(
                "",
            ),
            "document",
        ),
        (document_body("text", model="claude-nonexistent-9"), "model"),
    ]:
        status, raw = await post(http, gateway, body)
        error = orjson.loads(raw)["error"]
        assert status in (400, 404) and error["type"] in (
            "invalid_request_error",
            "not_found_error",
        )
        assert words in error["message"], error
    status, _ = await post(http, gateway, document_body("short text"))
    assert status == 200  # and it keeps serving


async def test_the_document_is_redacted_and_the_answer_restored(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=20, echo=True)
    gateway = await start_gateway(sim.url, pii=PiiSettings(mode="pseudonymize"))
    document = "Contact zhang.wei@example.com about card 4111 1111 1111 1111."
    status, raw = await post(http, gateway, document_body(document, max_tokens=400))
    assert status == 200
    sent = b"".join(entry.raw for entry in sim.runner.app[JOURNAL].entries)
    assert b"zhang.wei@example.com" not in sent and b"<EMAIL_1>" in sent
    # One chunk: the one call's (echoed) answer is the answer, with the values restored.
    text = orjson.loads(raw)["content"][0]["text"]
    assert "zhang.wei@example.com" in text and "4111 1111 1111 1111" in text


async def test_partial_results_that_do_not_fit_one_call_are_reduced_in_levels(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=200)
    gateway = await start_gateway(sim.url, documents=DocumentSettings(context_tokens=1500))
    body = document_body(mixed_document(60_000), stream=True, chunk_tokens=800, max_tokens=100)
    status, raw = await post(http, gateway, body)
    assert status == 200
    events = parse_events(raw)
    levels = [
        d["level"] for n, d in events if n == "document_progress" and d["stage"] == "reduce_started"
    ]
    assert levels == list(range(1, len(levels) + 1)) and len(levels) >= 2
    assert events[-1][0] == "message_stop"
    # Each reduce call fit the context it was given.
    for entry in sim.runner.app[JOURNAL].entries:
        assert len(entry.body["messages"][0]["content"]) < 1500 * 3


async def test_a_tenant_window_makes_parts_wait_not_go_missing(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    # Each call takes ~60 ms; the window holds one; a request may queue 0.2 s at most.
    sim = await start_sim(speed=0.3)
    gateway = await start_gateway(
        sim.url,
        tenants=[{"name": "t", "keys": ["key-t"], "max_concurrent": 1, "queue_timeout": 0.2}],
    )
    body = document_body(mixed_document(12_000), chunk_tokens=1000, max_tokens=50)
    status, raw = await post(http, gateway, body, **{"x-api-key": "key-t"})
    assert status == 200, raw[:200]
    summary = orjson.loads(raw)["document"]
    assert summary["chunks"] > 4 and summary["missing_chunks"] == []


async def test_a_refusal_for_the_whole_request_stops_at_once(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=500)
    gateway = await start_gateway(sim.url, documents=DocumentSettings(max_parallel=2))
    body = document_body(mixed_document(60_000), model="claude-nonexistent-9")
    status, raw = await post(http, gateway, body)
    assert status == 404 and orjson.loads(raw)["error"]["type"] == "not_found_error"
    # Not one refused call per part: those in flight (two) and at most one more.
    assert len(sim.runner.app[JOURNAL].entries) <= 3


async def test_a_client_that_leaves_cancels_the_map_calls(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=500)  # default latency: a call takes a few hundred ms
    gateway = await start_gateway(sim.url, documents=DocumentSettings(max_parallel=4))
    body = document_body(mixed_document(100_000), chunk_tokens=1000, stream=True)
    async with http.post(f"{gateway.url}/v1/documents", json=body, headers={"x-api-key": "k"}) as r:
        await r.content.readline()  # the split event: the map has begun
        r.close()
    stats = sim.runner.app[STATE].stats
    async with asyncio.timeout(10):
        while stats.in_flight:
            await asyncio.sleep(0.02)
    # The parts not yet sent never were: a handful in flight, not all 60-odd.
    assert len(sim.runner.app[JOURNAL].entries) < 20


async def test_requests_that_cannot_fit_are_refused_up_front(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    gateway = await start_gateway(
        sim.url, documents=DocumentSettings(context_tokens=5000, max_chunks=100)
    )
    for body, words in [
        (document_body("text", chunk_tokens=4000, max_tokens=2000), "context_tokens"),
        (document_body("text", chunk_tokens=1000, max_tokens=1200), "max_tokens"),
        (document_body("text", max_tokens=True), "max_tokens"),
        (document_body("text", chunk_tokens="4000"), "chunk_tokens"),
        (document_body("   \n "), "blank"),
        (document_body("text " * 20_000, chunk_tokens=100, overlap_tokens=0), "max_chunks"),
    ]:
        for stream in (False, True):
            status, raw = await post(http, gateway, {**body, "stream": stream})
            assert status == 400, (words, raw[:200])
            assert words in orjson.loads(raw)["error"]["message"]
    assert len(sim.runner.app[JOURNAL].entries) == 0
