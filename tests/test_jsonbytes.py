"""Bodies nested past orjson's writer (254 levels; it reads 1,024): the gateway encodes,
estimates, stores and keys them like any other, and never answers 500 for one."""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import orjson

from claude_proxy.jsonbytes import to_json
from claude_proxy.prompt_cache import PromptCacheSettings
from claude_proxy.response_cache import ResponseCacheSettings
from claude_proxy.sessions import SessionSettings
from claude_proxy.sim import JOURNAL
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS
from tests.prompt_cache.bodies import text


def nested_json(levels: int) -> bytes:
    """An object ``levels`` deep, half of them arrays, written by hand (orjson cannot)."""
    opening, closing = [], []
    for level in range(levels):
        if level % 2 == 0:
            opening.append(b'{"x":')
            closing.append(b"}")
        else:
            opening.append(b"[")
            closing.append(b",%d]" % level)
    return b"".join(opening) + '{"leaf":"é 1"}'.encode() + b"".join(reversed(closing))


def nested(levels: int) -> Any:
    return orjson.loads(nested_json(levels))


def _value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 5 or rng.random() < 0.3:
        return rng.choice([None, True, False, 0, -5, 1.5, "x", 'é中"\\', ""])
    if rng.random() < 0.5:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice("abzé"): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_the_same_bytes_as_orjson_at_any_depth() -> None:
    rng = random.Random(7)
    for _ in range(300):
        value = _value(rng)
        assert to_json(value) == orjson.dumps(value)
        assert to_json(value, sort_keys=True) == orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    for levels in (254, 255, 1000):
        assert to_json(nested(levels)) == nested_json(levels)
    assert to_json(nested(1000), sort_keys=True) == nested_json(1000)


def deep_request() -> dict[str, Any]:
    """A tool schema 300 levels deep, a tool call's input 1,000 (the body: 1,006, under
    the 1,024 JSON is read to), a system long enough for breakpoints (a changed body)."""
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 20,
        "temperature": 0,
        "system": text(1500, "probes"),
        "tools": [{"name": "probe", "input_schema": {"type": "object", "properties": nested(300)}}],
        "messages": [
            {"role": "user", "content": "Probe it."},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "probe", "input": nested(1000)}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]},
        ],
    }  # fmt: skip


async def test_a_deeply_nested_body_gets_the_upstreams_answer(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    plain = await start_gateway(sim.url, prompt_caching=PromptCacheSettings(enabled=False))
    every = await start_gateway(
        sim.url,
        sessions=SessionSettings(url="memory://"),
        response_cache=ResponseCacheSettings(enabled=True),
    )
    raw = to_json(deep_request())
    async with http.post(f"{plain.url}/v1/messages", data=raw, headers=API_HEADERS) as r:
        assert r.status == 200, await r.text()
    assert sim.runner.app[JOURNAL].entries[-1].raw == raw  # estimated, sent as it came
    # Breakpoints added (the body encoded again), an answer cached under its key, then
    # a session turn stored and sent again with the next one.
    for outcome in ("miss", "hit"):
        async with http.post(f"{every.url}/v1/messages", data=raw, headers=API_HEADERS) as r:
            assert (r.status, r.headers["x-proxy-response-cache"]) == (200, outcome)
    session = {**API_HEADERS, "x-session-id": "deep"}
    again = {**deep_request(), "messages": [{"role": "user", "content": "Again."}]}
    for turn, body in enumerate((deep_request(), again)):
        url = f"{every.url}/v1/messages"
        async with http.post(url, data=to_json(body), headers=session) as r:
            assert r.status == 200, await r.text()
            assert r.headers["x-proxy-prompt-cache"].startswith("added="), turn
    sent = sim.runner.app[JOURNAL].entries[-1].body
    assert len(sent["messages"]) == 5
    assert to_json(sent["messages"][1]["content"][0]["input"]) == nested_json(1000)
