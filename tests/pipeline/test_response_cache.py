"""The response cache end to end: a gateway in front of the simulator, which journals every
request that reaches it (so the upstream calls a hit saved are counted, not assumed)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
import redis
from multidict import CIMultiDictProxy

from claude_proxy.config import RetrySettings, StreamSettings
from claude_proxy.pii import PiiSettings
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.response_cache import ResponseCacheSettings
from claude_proxy.server import RunningServer
from claude_proxy.sim import JOURNAL
from tests.api.test_metrics import scrape, total
from tests.api.test_websocket import collect, request_frame
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.scripted import ScriptedUpstream, text_part
from tests.sse import parse_events
from tests.state.redis_fixtures import key_prefix, redis_url
from tests.state.redis_server import StartRedis, start_redis

__all__ = ["key_prefix", "redis_url", "start_redis"]

HEADER = "x-proxy-response-cache"
KEY_A, KEY_B, KEY_C = "sk-team-a-secret", "sk-team-b-secret", "sk-team-c-secret"
ON = ResponseCacheSettings(enabled=True)
FIXED = message_body("Name three rivers.", temperature=0)


def upstream_calls(sim: RunningServer) -> int:
    return len(sim.runner.app[JOURNAL].entries)


async def post(
    http: aiohttp.ClientSession,
    gateway: RunningServer,
    body: dict[str, Any],
    **headers: str,
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with http.post(
        f"{gateway.url}/v1/messages", json=body, headers={**API_HEADERS, **headers}
    ) as r:
        return r.status, r.headers, await r.read()


async def test_an_identical_json_request_is_answered_from_the_cache(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    gateway = await start_gateway(sim.url, response_cache=ON)
    status, first_headers, first = await post(http, gateway, FIXED)
    assert status == 200 and first_headers[HEADER] == "miss"
    status, headers, again = await post(http, gateway, FIXED)
    assert status == 200 and headers[HEADER] == "hit"
    assert again == first  # the same message, id included, byte for byte
    assert headers["content-type"] == "application/json"
    assert headers["x-proxy-attempts"] == "0"  # nothing went upstream
    assert headers["request-id"] != first_headers["request-id"]  # the call's own id
    assert upstream_calls(sim) == 1
    # Another question is another entry.
    _, headers, _ = await post(http, gateway, message_body("Name three lakes.", temperature=0))
    assert headers[HEADER] == "miss" and upstream_calls(sim) == 2


def without_event_ids(raw: bytes) -> bytes:
    return b"".join(line for line in raw.splitlines(keepends=True) if not line.startswith(b"id:"))


async def test_a_stream_hit_replays_the_same_bytes_and_can_be_resumed(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    plain = await start_gateway(sim.url, response_cache=ON, streams=StreamSettings(resumable=False))
    body = {**FIXED, "stream": True}
    _, headers, miss = await post(http, plain, body)
    assert headers[HEADER] == "miss"
    _, headers, hit = await post(http, plain, body)
    assert headers[HEADER] == "hit"
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    assert hit == miss  # every byte of every event
    assert parse_events(hit)[-1][0] == "message_stop"
    assert upstream_calls(sim) == 1
    # A JSON request is not answered with a stream's entry, nor the reverse.
    _, headers, _ = await post(http, plain, FIXED)
    assert headers[HEADER] == "miss" and upstream_calls(sim) == 2

    resumable = await start_gateway(sim.url, response_cache=ON)
    _, _, miss = await post(http, resumable, body)
    _, headers, hit = await post(http, resumable, body)
    assert headers[HEADER] == "hit" and without_event_ids(hit) == without_event_ids(miss)
    assert hit != miss  # each stream has its own id
    stream_id = headers["x-proxy-stream-id"]
    # A hit goes through the replay log like any stream: it can be read again.
    async with http.get(
        f"{resumable.url}/v1/streams/{stream_id}",
        headers={**API_HEADERS, "last-event-id": f"{stream_id}:2"},
    ) as r:
        resumed = await r.read()
    assert parse_events(resumed) == parse_events(hit)[2:]


async def test_the_sdk_streams_a_hit_as_it_streamed_the_miss(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    """SDK 2.x sends anthropic-version 2026-10-21, which refuses temperature: its requests
    always sample, and are cached only for a tenant that allows it."""
    sim = await start_sim(journal=10)
    tenants = [
        {"name": "a", "keys": [KEY_A], "response_cache": {"enabled": True, "allow_sampling": True}},
        {"name": "b", "keys": [KEY_B], "response_cache": {"enabled": True}},
    ]
    gateway = await start_gateway(sim.url, tenants=tenants)
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "Describe a harbour at dawn."}],
    }
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=KEY_A, max_retries=0)
    results = []
    for _ in range(2):
        async with sdk.messages.stream(**request) as stream:
            message = await stream.get_final_message()
            results.append((stream.response.headers[HEADER], message))
    (first, miss), (second, hit) = results
    assert (first, second) == ("miss", "hit")
    assert hit.to_dict() == miss.to_dict() and hit.content[0].type == "text"
    assert upstream_calls(sim) == 1

    other = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=KEY_B, max_retries=0)
    raw = await other.messages.with_raw_response.create(**request)
    assert raw.headers[HEADER] == "bypass; reason=sampling"
    assert upstream_calls(sim) == 2


async def test_a_websocket_request_is_answered_from_the_cache_too(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    gateway = await start_gateway(sim.url, response_cache=ON)
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=API_HEADERS) as ws:
        await ws.send_str(request_frame(1, FIXED))
        miss = (await collect(ws, {1}))[1]
        await ws.send_str(request_frame(2, FIXED))
        hit = (await collect(ws, {2}))[2]
    assert [frame["event"] for frame in hit] == [frame["event"] for frame in miss]
    assert upstream_calls(sim) == 1
    # The key is the body's bytes as sent upstream: the socket's request is encoded by
    # the gateway (compact, "stream" last); an HTTP client that sends those bytes shares
    # its entry.
    async with http.post(
        f"{gateway.url}/v1/messages",
        data=orjson.dumps({**FIXED, "stream": True}),
        headers=API_HEADERS,
    ) as r:
        assert r.headers[HEADER] == "hit"
        sse = await r.read()
    assert [data for _, data in parse_events(sse)] == [frame["event"] for frame in miss]
    assert upstream_calls(sim) == 1


@pytest.mark.parametrize(
    ("fields", "cached"),
    [({}, False), ({"temperature": 0.7}, False), ({"temperature": 0}, True)],
)
async def test_sampled_requests_are_not_cached_unless_the_tenant_allows_it(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    fields: dict[str, Any],
    cached: bool,
) -> None:
    sim = await start_sim(journal=10)
    tenants = [
        {"name": "strict", "keys": [KEY_A], "response_cache": {"enabled": True}},
        {"name": "lenient", "keys": [KEY_B], "response_cache": {"allow_sampling": True}},
    ]
    # The gateway-wide section sets what a tenant does not: lenient is enabled by it.
    gateway = await start_gateway(sim.url, tenants=tenants, response_cache=ON)
    body = message_body("Pick a colour.", **fields)
    verdicts = [(await post(http, gateway, body, **{"x-api-key": KEY_A}))[1][HEADER]]
    verdicts.append((await post(http, gateway, body, **{"x-api-key": KEY_A}))[1][HEADER])
    if cached:
        assert verdicts == ["miss", "hit"] and upstream_calls(sim) == 1
    else:
        assert verdicts == ["bypass; reason=sampling"] * 2 and upstream_calls(sim) == 2
    calls = upstream_calls(sim)
    for expected in ("miss", "hit"):
        _, headers, _ = await post(http, gateway, body, **{"x-api-key": KEY_B})
        assert headers[HEADER] == expected
    assert upstream_calls(sim) == calls + 1


async def test_schemas_that_differ_in_property_order_are_different_requests(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """The model answers a JSON schema's properties in their order: the key is the body's
    bytes as sent, not its value with keys sorted."""
    sim = await start_sim(journal=10)
    gateway = await start_gateway(sim.url, response_cache=ON)
    name, age = {"name": {"type": "string"}}, {"age": {"type": "integer"}}
    verdicts = []
    for properties in ({**name, **age}, {**age, **name}, {**name, **age}, {**age, **name}):
        schema = {"type": "object", "properties": properties}
        body = message_body(
            "Extract the person: Ada, 36.",
            temperature=0,
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
        status, headers, _ = await post(http, gateway, body)
        assert status == 200
        verdicts.append(headers[HEADER])
    assert verdicts == ["miss", "miss", "hit", "hit"] and upstream_calls(sim) == 2


async def test_one_tenants_entry_never_answers_another(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    enabled = {"enabled": True}
    tenants = [
        {"name": "a", "keys": [KEY_A], "response_cache": enabled},
        {"name": "b", "keys": [KEY_B], "response_cache": enabled},
        {"name": "c", "keys": [KEY_C]},  # the cache is opt-in
    ]
    gateway = await start_gateway(sim.url, tenants=tenants)
    seen = []
    for key in (KEY_A, KEY_A, KEY_B, KEY_B, KEY_C, KEY_C):
        status, headers, _ = await post(http, gateway, FIXED, **{"x-api-key": key})
        assert status == 200
        seen.append(headers.get(HEADER))
    assert seen == ["miss", "hit", "miss", "hit", None, None]
    assert upstream_calls(sim) == 4


async def test_errors_and_cut_streams_are_not_cached(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10, fail_marker="FAIL-HERE")
    gateway = await start_gateway(
        sim.url,
        response_cache=ON,
        retry=RetrySettings(max_attempts=1, heal_streams=False),
    )
    failing = message_body("FAIL-HERE please", temperature=0)
    for _ in range(2):
        status, headers, _ = await post(http, gateway, failing)
        assert status == 500 and headers[HEADER] == "miss"
    assert upstream_calls(sim) == 2

    body = {**FIXED, "stream": True}
    status, headers, cut = await post(http, gateway, body, **{"x-sim-fault": "cut"})
    assert status == 200 and parse_events(cut)[-1][0] == "error"
    verdicts = [(await post(http, gateway, body))[1][HEADER] for _ in range(2)]
    assert verdicts == ["miss", "hit"]  # the cut stream was not kept
    assert upstream_calls(sim) == 4


def text_of(raw: bytes) -> str:
    return "".join(
        data["delta"].get("text", "")
        for name, data in parse_events(raw)
        if name == "content_block_delta"
    )


async def test_streams_the_gateway_mended_after_a_break_are_not_kept(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """A heal's budget, or the decision that max_tokens is reached, comes from an estimate:
    such an answer may be shorter than the upstream's, and must not be replayed for the TTL."""
    sim = await start_sim(journal=10)
    gateway = await start_gateway(
        sim.url,
        response_cache=ON,
        streams=StreamSettings(resumable=False),
        retry=RetrySettings(base_delay=0),  # the heal at once
    )
    body = message_body("Tell me about rivers.", max_tokens=24, temperature=0, stream=True)

    def cut(events: int) -> dict[str, str]:
        return {
            "x-sim-fault": f"cut:{events}",
            "x-sim-fault-times": "1",
            "x-sim-fault-key": f"k{events}",
        }

    _, headers, healed = await post(http, gateway, body, **cut(8))
    assert headers[HEADER] == "miss" and upstream_calls(sim) == 2  # the cut part, the heal
    # Cut after the estimate already reached max_tokens: the gateway ends it there.
    _, headers, ended = await post(http, gateway, body, **cut(11))
    assert headers[HEADER] == "miss" and upstream_calls(sim) == 3  # no heal
    for mended in (healed, ended):
        assert parse_events(mended)[-1][0] == "message_stop"
    _, headers, whole = await post(http, gateway, body)
    assert headers[HEADER] == "miss" and upstream_calls(sim) == 4
    assert len(text_of(whole)) > max(len(text_of(healed)), len(text_of(ended)))
    _, headers, hit = await post(http, gateway, body)
    assert headers[HEADER] == "hit" and hit == whole and upstream_calls(sim) == 4


async def test_a_stream_continued_as_the_client_asked_is_kept(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    gateway = await start_gateway(
        sim.url, response_cache=ON, streams=StreamSettings(resumable=False)
    )
    body = message_body("Tell me about rivers.", max_tokens=16, temperature=0, stream=True)
    asked = {"x-proxy-max-continuations": "2", "x-sim-answer-tokens": "40"}
    _, headers, continued = await post(http, gateway, body, **asked)
    assert headers[HEADER] == "miss" and upstream_calls(sim) == 3  # two continuations
    _, headers, hit = await post(http, gateway, body, **asked)
    assert headers[HEADER] == "hit" and hit == continued and upstream_calls(sim) == 3


class Locale:
    """An embedding application's stage: the system prompt from a header, and a stamp on
    each answer."""

    name = "locale"
    routes = frozenset({Route.MESSAGES})

    async def on_request(self, call: Call) -> None:
        language = call.headers.get("x-locale", "en")
        call.set_body({**call.body, "system": f"Answer in language {language}."})

    def on_message(self, call: Call, message: dict[str, Any]) -> dict[str, Any]:
        message["content"][0]["text"] += " [stamped]"
        return message


async def test_an_embedding_applications_stages_run_before_the_cache(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """Their body changes are in the key, and their answer hooks run once on a hit."""
    sim = await start_sim(journal=10, echo=True)
    gateway = await start_gateway(sim.url, response_cache=ON, extra_stages=lambda _: [Locale()])
    seen = []
    for locale in ("en", "en", "fr"):
        _, headers, raw = await post(http, gateway, FIXED, **{"x-locale": locale})
        seen.append((headers[HEADER], orjson.loads(raw)["content"][0]["text"]))
    assert [verdict for verdict, _ in seen] == ["miss", "hit", "miss"]
    assert seen[1] == ("hit", seen[0][1])
    assert all(text.count("[stamped]") == 1 for _, text in seen)
    systems = [entry.body["system"] for entry in sim.runner.app[JOURNAL].entries]
    assert systems == ["Answer in language en.", "Answer in language fr."]


@pytest.mark.parametrize("stream", [False, True])
async def test_refusals_are_not_cached(
    start_gateway: StartGateway, http: aiohttp.ClientSession, stream: bool
) -> None:
    refusal: bytes | tuple[int, dict[str, Any]]
    if stream:
        refusal = text_part("I can't help with that.", stop="refusal")
    else:
        refusal = (
            200,
            {
                "id": "msg_01refusal",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5",
                "content": [{"type": "text", "text": "I can't help with that."}],
                "stop_reason": "refusal",
                "stop_sequence": None,
                "usage": {"input_tokens": 9, "output_tokens": 7},
            },
        )
    upstream = ScriptedUpstream(refusal, refusal)
    gateway = await start_gateway(await upstream.start(), response_cache=ON)
    try:
        for _ in range(2):
            status, headers, _ = await post(http, gateway, {**FIXED, "stream": stream})
            assert status == 200 and headers[HEADER] == "miss"
        assert len(upstream.bodies) == 2
    finally:
        await upstream.stop()


@pytest.mark.parametrize("stream", [False, True])
async def test_pseudonyms_are_restored_per_call_on_a_hit(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession, stream: bool
) -> None:
    """The key is the redacted body, the entry the upstream's answer with its placeholders:
    two clients whose values differ share it, and each reads back its own value."""
    sim = await start_sim(journal=10, echo=True)
    gateway = await start_gateway(sim.url, response_cache=ON, pii=PiiSettings(mode="pseudonymize"))
    texts = []
    for email in ("li.na@example.com", "chen.jie@example.org"):
        body = message_body(f"Please write to {email} today.", temperature=0, stream=stream)
        status, headers, raw = await post(http, gateway, body)
        assert status == 200
        if stream:
            text = "".join(
                data["delta"].get("text", "")
                for name, data in parse_events(raw)
                if name == "content_block_delta"
            )
        else:
            text = orjson.loads(raw)["content"][0]["text"]
        texts.append((headers[HEADER], text))
    (first, to_li), (second, to_chen) = texts
    assert (first, second) == ("miss", "hit")
    assert "li.na@example.com" in to_li and "chen.jie" not in to_li
    assert "chen.jie@example.org" in to_chen and "li.na" not in to_chen
    # The upstream saw one request, with a placeholder; the entry holds no value.
    (sent,) = [entry.body for entry in sim.runner.app[JOURNAL].entries]
    assert sent["messages"][0]["content"] == "Please write to <EMAIL_1> today."


async def test_a_hit_takes_nothing_from_the_tenants_limits(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    tenants = [
        {
            "name": "a",
            "keys": [KEY_A],
            "requests_per_minute": 1,
            "queue_timeout": 0,
            "response_cache": {"enabled": True},
        }
    ]
    gateway = await start_gateway(sim.url, tenants=tenants)
    auth = {"x-api-key": KEY_A}
    assert (await post(http, gateway, FIXED, **auth))[0] == 200  # the minute's one request
    for _ in range(3):
        status, headers, _ = await post(http, gateway, FIXED, **auth)
        assert status == 200 and headers[HEADER] == "hit"
    status, _, _ = await post(http, gateway, message_body("Another.", temperature=0), **auth)
    assert status == 429
    assert upstream_calls(sim) == 1


async def test_cache_control_and_sessions_pass_the_cache_by(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=20)
    gateway = await start_gateway(sim.url, response_cache=ON, sessions="memory://")

    async def message_id(**headers: str) -> tuple[str, str]:
        _, got, raw = await post(http, gateway, FIXED, **headers)
        return got[HEADER], orjson.loads(raw)["id"]

    _, stored = await message_id()
    assert await message_id(**{"cache-control": "no-store"}) != ("hit", stored)
    assert await message_id() == ("hit", stored)
    # no-cache: not read, but the fresh answer replaces the entry.
    verdict, fresh = await message_id(**{"cache-control": "no-cache"})
    assert verdict == "bypass; reason=no-cache" and fresh != stored
    assert await message_id() == ("hit", fresh)
    verdict, _ = await message_id(**{"x-session-id": "conversation-1"})
    assert verdict == "bypass; reason=session"
    assert upstream_calls(sim) == 4


async def test_answers_over_the_entry_limit_are_not_kept(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    small = ResponseCacheSettings(enabled=True, max_entry_bytes=200, max_bytes=1000)
    gateway = await start_gateway(sim.url, response_cache=small)
    for body in (FIXED, FIXED, {**FIXED, "stream": True}, {**FIXED, "stream": True}):
        status, headers, _ = await post(http, gateway, body)
        assert status == 200 and headers[HEADER] == "miss"
    assert upstream_calls(sim) == 4
    _, series = await scrape(http, gateway)
    assert total(series, "api_response_cache_stores_total", result="too_large") == 4
    assert total(series, "api_response_cache_bytes") == 0


async def test_metrics_count_hits_misses_bypasses_and_bytes(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim()
    gateway = await start_gateway(sim.url, response_cache=ON)
    for body in (FIXED, FIXED, FIXED, message_body(), {**FIXED, "stream": True}):
        assert (await post(http, gateway, body))[0] == 200
    _, series = await scrape(http, gateway)
    assert total(series, "api_response_cache_hits_total", tenant="default") == 2
    assert total(series, "api_response_cache_misses_total") == 2
    assert total(series, "api_response_cache_bypasses_total", reason="sampling") == 1
    assert total(series, "api_response_cache_stores_total", result="stored") == 2
    assert total(series, "api_response_cache_bytes") > 500


async def test_hits_stay_out_of_the_upstreams_latency_histograms(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """A hit's time to first token is the gateway's ~1 ms: counted with the upstream's, it
    would pull the TTFT histogram towards zero. It is still a request (duration, count)."""
    sim = await start_sim()
    gateway = await start_gateway(sim.url, response_cache=ON)
    body = {**FIXED, "stream": True}
    long_answer = {"x-sim-answer-tokens": "200"}
    assert (await post(http, gateway, body, **long_answer))[1][HEADER] == "miss"
    _, before = await scrape(http, gateway)
    assert (await post(http, gateway, body, **long_answer))[1][HEADER] == "hit"
    _, after = await scrape(http, gateway)
    for name in ("api_time_to_first_token_seconds_count", "api_inter_token_gap_seconds_count"):
        assert total(after, name) == total(before, name) > 0
    duration = "api_request_duration_seconds_count"
    assert total(after, duration, stream="yes") == total(before, duration, stream="yes") + 1


async def test_replicas_share_entries_through_redis(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    redis_url: str,
    key_prefix: str,
) -> None:
    sim = await start_sim(journal=10)
    tenants = [
        {"name": "a", "keys": [KEY_A], "response_cache": {"enabled": True, "ttl_seconds": 90}}
    ]
    shared: dict[str, Any] = {
        "state": redis_url,
        "admission": {"key_prefix": key_prefix + "admission:"},
        "response_cache": {"url": redis_url},  # named: the state Redis is not the default
        "tenants": tenants,
    }
    one, two = await start_gateway(sim.url, **shared), await start_gateway(sim.url, **shared)
    auth = {"x-api-key": KEY_A}
    body = {**FIXED, "stream": True}
    _, headers, miss = await post(http, one, body, **auth)
    assert headers[HEADER] == "miss"
    _, headers, hit = await post(http, two, body, **auth)
    assert headers[HEADER] == "hit"
    assert without_event_ids(hit) == without_event_ids(miss)
    assert [(await post(http, gateway, FIXED, **auth))[1][HEADER] for gateway in (two, one)] == [
        "miss",
        "hit",
    ]
    assert upstream_calls(sim) == 2
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=key_prefix + "response-cache:a:*"))
        assert len(keys) == 2
        assert all(85_000 < client.pttl(key) <= 90_000 for key in keys)
    finally:
        client.close()


async def test_without_its_own_url_the_cache_stays_out_of_the_state_redis(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    redis_url: str,
    key_prefix: str,
) -> None:
    """Answers in the ``state`` Redis would fill it (admission then fails on OOM) or,
    with ``allkeys-lru``, evict limits and streams: without a URL they stay in memory."""
    sim = await start_sim(journal=10)
    gateway = await start_gateway(
        sim.url,
        state=redis_url,
        admission={"key_prefix": key_prefix + "admission:"},
        response_cache=ON,
    )
    verdicts = [(await post(http, gateway, FIXED))[1][HEADER] for _ in range(2)]
    assert verdicts == ["miss", "hit"] and upstream_calls(sim) == 1
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=key_prefix + "response-cache:*")) == []
    finally:
        client.close()
    _, series = await scrape(http, gateway)
    assert total(series, "api_response_cache_bytes") > 0  # counted: the memory backend


async def verdict_of(http: aiohttp.ClientSession, gateway: RunningServer) -> str:
    status, headers, _ = await post(http, gateway, FIXED)
    assert status == 200  # whatever the store does, the client is answered
    return headers[HEADER]


async def test_a_cache_that_is_down_is_passed_by(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    start_redis: StartRedis,
) -> None:
    server = start_redis()
    sim = await start_sim(journal=10)
    settings = ResponseCacheSettings(enabled=True, url=server.url)
    gateway = await start_gateway(sim.url, response_cache=settings)  # state: memory://
    verdicts = [await verdict_of(http, gateway) for _ in range(2)]
    server.kill()
    verdicts += [await verdict_of(http, gateway) for _ in range(2)]
    assert verdicts == ["miss", "hit"] + ["bypass; reason=unavailable"] * 2
    server.start()  # empty: no persistence
    # A PING in the background finds it back (a fraction of a second into an outage).
    await eventually(lambda: verdict_of(http, gateway), "miss")
    assert await verdict_of(http, gateway) == "hit"


async def eventually(check: Callable[[], Awaitable[str]], wanted: str, within: float = 3) -> None:
    deadline = time.monotonic() + within
    while (got := await check()) != wanted:
        assert time.monotonic() < deadline, f"still {got!r}"
        await asyncio.sleep(0.02)


async def test_a_redis_that_hangs_costs_one_short_deadline_then_nothing(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    start_redis: StartRedis,
) -> None:
    """A stopped redis-server accepts connections and never answers: the first lookup
    gives up at lookup_timeout, the next ones pass it by at once, a store at most holds
    up the end of an answer by store_timeout, and it is used again once it answers."""
    server = start_redis()
    sim = await start_sim(journal=100)  # it keeps the last 100
    settings = ResponseCacheSettings(enabled=True, url=server.url)  # 0.1 s, 0.2 s
    gateway = await start_gateway(sim.url, response_cache=settings)
    assert [await verdict_of(http, gateway) for _ in range(2)] == ["miss", "hit"]
    server.pause()
    try:
        started = time.perf_counter()
        assert await verdict_of(http, gateway) == "bypass; reason=unavailable"
        assert time.perf_counter() - started < 0.5  # the lookup's deadline, not 1 s
        started = time.perf_counter()
        for _ in range(5):
            assert await verdict_of(http, gateway) == "bypass; reason=unavailable"
        assert (
            time.perf_counter() - started < 0.45
        )  # flagged: not even tried (5 x 0.1 s if it were)
    finally:
        server.resume()
    await eventually(lambda: verdict_of(http, gateway), "hit")  # the entry is still there

    # The store of an answer whose lookup went through, Redis hanging meanwhile.
    body = message_body("Name three lakes.", temperature=0, stream=True)
    calls = upstream_calls(sim)
    started = time.perf_counter()
    answer = asyncio.create_task(post(http, gateway, body, **{"x-sim-fault": "slow:0.3"}))
    while upstream_calls(sim) == calls:  # looked up, and now waiting on the upstream
        assert time.perf_counter() - started < 2
        await asyncio.sleep(0.005)
    server.pause()
    try:
        status, headers, raw = await answer
    finally:
        server.resume()
    assert status == 200 and headers[HEADER] == "miss"
    assert parse_events(raw)[-1][0] == "message_stop"
    assert time.perf_counter() - started < 0.3 + 0.2 + 0.4  # not the 1 s socket timeout
    _, series = await scrape(http, gateway)
    assert total(series, "api_response_cache_stores_total", result="failed") == 1


async def test_refused_writes_are_counted_and_logged_once_not_taken_for_an_outage(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    start_redis: StartRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A replica (READONLY, as after a failover) or a full Redis under noeviction (OOM)
    answers lookups and refuses every store, for as long as it lasts."""
    caplog.set_level(logging.WARNING, logger="claude_proxy.response_cache")
    server = start_redis()
    with server.client() as client:
        client.replicaof("127.0.0.1", "1")  # a master that is not there: read-only
    sim = await start_sim(journal=10)
    settings = ResponseCacheSettings(enabled=True, url=server.url)
    gateway = await start_gateway(sim.url, response_cache=settings)
    for question in range(6):
        body = message_body(f"Question {question}.", temperature=0)
        status, headers, _ = await post(http, gateway, body)
        assert status == 200 and headers[HEADER] == "miss"  # looked up: no outage
    _, series = await scrape(http, gateway)
    assert total(series, "api_response_cache_stores_total", result="failed") == 6
    lines = [r.getMessage() for r in caplog.records if r.name == "claude_proxy.response_cache"]
    assert len(lines) == 1 and all(r.levelno == logging.WARNING for r in caplog.records)
    assert "1 store(s) failed" in lines[0] and "ReadOnlyError" in lines[0]
