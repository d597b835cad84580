"""Automatic prompt caching end to end: a gateway in front of the simulator, which
journals what reached it and keeps a prompt cache as the API does."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from claude_proxy.prompt_cache import PromptCacheSettings
from claude_proxy.server import RunningServer
from claude_proxy.sessions import SessionSettings
from claude_proxy.sim import JOURNAL
from tests.api.test_metrics import scrape, total
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS
from tests.prompt_cache.bodies import markers, text
from tests.sse import parse_events

HEADER = "x-proxy-prompt-cache"
SYSTEM = text(1500, "library rules")  # past Sonnet 4.5's 1,024 tokens, as the API counts


def sent(sim: RunningServer) -> list[Any]:
    return list(sim.runner.app[JOURNAL].entries)


async def post(
    http: aiohttp.ClientSession,
    gateway: RunningServer,
    body: dict[str, Any] | bytes,
    **headers: str,
) -> tuple[int, dict[str, Any], str | None]:
    """Status, answer and the x-proxy-prompt-cache header of one JSON call."""
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with http.post(
        f"{gateway.url}/v1/messages", headers={**API_HEADERS, **headers}, **kwargs
    ) as r:
        return r.status, await r.json(), r.headers.get(HEADER)


def long_request(**fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "Which shelf?"}],
        **fields,
    }


async def test_the_next_turn_reads_the_cache_through_the_sdk(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    """A client that never marks a breakpoint: its second turn (JSON) and third (a
    stream) are read from the cache the turn before wrote."""
    sim = await start_sim()
    gateway = await start_gateway(sim.url)
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="any", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Where are the atlases?"}]
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=60, system=SYSTEM, messages=messages
    )
    first = await raw.parse()
    assert raw.headers[HEADER] == "added=2; at=system,messages; ttl=5m"
    assert first.usage.cache_creation_input_tokens and not first.usage.cache_read_input_tokens
    messages += [
        {"role": "assistant", "content": first.content[0].text},  # type: ignore[union-attr]
        {"role": "user", "content": "And the maps?"},
    ]
    second = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=60, system=SYSTEM, messages=messages
    )
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    messages += [
        {"role": "assistant", "content": second.content[0].text},  # type: ignore[union-attr]
        {"role": "user", "content": "Thanks."},
    ]
    async with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=60, system=SYSTEM, messages=messages
    ) as stream:
        third = await stream.get_final_message()
    assert third.usage.cache_read_input_tokens > second.usage.cache_read_input_tokens  # type: ignore[operator]
    await client.close()


async def test_requests_without_breakpoints_go_upstream_byte_for_byte(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    gateway = await start_gateway(sim.url)
    short = (
        b'{ "max_tokens":50,"model" :"claude-sonnet-4-5",\n '
        b'"messages":[{"role":"user","content":"H\\u00e9llo"}]}'
    )
    automatic = orjson.dumps(
        long_request(cache_control={"type": "ephemeral"}), option=orjson.OPT_INDENT_2
    )
    long = orjson.dumps(long_request(), option=orjson.OPT_INDENT_2)
    cases = [(short, {}, "added=0; reason=short"),
             (automatic, {}, "added=0; reason=automatic"),
             (long, {HEADER: "off"}, "off")]  # fmt: skip
    for raw, headers, report in cases:
        status, answer, header = await post(http, gateway, raw, **headers)
        assert (status, header) == (200, report), answer
        assert sent(sim)[-1].raw == raw
    # Counted by outcome, and where each added one went.
    await post(http, gateway, long_request())
    _, series = await scrape(http, gateway)
    for outcome in ("short", "automatic", "off", "added"):
        assert total(series, "api_prompt_cache_requests_total", outcome=outcome) == 1
    assert total(series, "api_prompt_cache_breakpoints_added_total", where="system") == 1
    assert total(series, "api_prompt_cache_breakpoints_added_total", where="messages") == 1
    # What the cache wrote is counted per model with the other tokens.
    assert total(series, "api_tokens_total", model="claude-sonnet-4-5", type="cache_write") > 1000


async def test_tenants_and_the_request_header_choose(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=10)
    tenants = [
        {"name": "off", "keys": ["key-off"], "prompt_caching": {"enabled": False}},
        {"name": "hour", "keys": ["key-hour"], "prompt_caching": {"ttl": "1h"}},
        {"name": "plain", "keys": ["key-plain"]},
    ]
    gateway = await start_gateway(sim.url, tenants=tenants)

    async def ttls(key: str, **headers: str) -> tuple[str | None, list[Any]]:
        status, answer, header = await post(
            http, gateway, long_request(), **{"x-api-key": key, **headers}
        )
        assert status == 200, answer
        return header, [marker.get("ttl", "5m") for marker in markers(sent(sim)[-1].body)]

    assert await ttls("key-off") == ("off", [])
    assert await ttls("key-off", **{HEADER: "1h"}) == ("off", [])  # cannot turn it on
    assert await ttls("key-hour") == ("added=2; at=system,messages; ttl=1h", ["1h", "1h"])
    assert await ttls("key-hour", **{HEADER: "off"}) == ("off", [])
    assert await ttls("key-plain") == ("added=2; at=system,messages; ttl=5m", ["5m", "5m"])
    assert await ttls("key-plain", **{HEADER: "1h"}) == (
        "added=2; at=system,messages; ttl=1h",
        ["1h", "1h"],
    )
    status, answer, _ = await post(
        http, gateway, long_request(), **{"x-api-key": "key-plain", HEADER: "2h"}
    )
    assert status == 400 and HEADER in answer["error"]["message"]
    # The gateway's own header never goes upstream.
    assert all(HEADER not in entry.raw.decode() for entry in sent(sim))


async def test_off_for_the_gateway_is_out_of_the_chain(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=5)
    gateway = await start_gateway(sim.url, prompt_caching=PromptCacheSettings(enabled=False))
    raw = orjson.dumps(long_request())
    status, _, header = await post(http, gateway, raw, **{HEADER: "5m"})
    assert (status, header) == (200, None) and sent(sim)[-1].raw == raw


async def test_a_session_stores_turns_without_the_gateways_breakpoints(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """Stored with them, a session's turns would carry more breakpoints than the API
    takes by the fifth turn; each turn is marked afresh, and read from the cache."""
    sim = await start_sim()
    gateway = await start_gateway(sim.url, sessions=SessionSettings(url="memory://"))
    usage: dict[str, Any] = {}
    for turn in range(6):
        body = long_request(messages=[{"role": "user", "content": f"Turn {turn}: " + text(80)}])
        body["stream"] = turn % 2 == 1
        async with http.post(f"{gateway.url}/v1/messages", json=body,
                             headers={**API_HEADERS, "x-session-id": "s1"}) as r:  # fmt: skip
            raw = await r.read()
            assert r.status == 200, raw
        if body["stream"]:
            usage = parse_events(raw)[0][1]["message"]["usage"]
        else:
            usage = orjson.loads(raw)["usage"]
    assert usage["cache_read_input_tokens"] > 1000
    async with http.get(f"{gateway.url}/v1/sessions/s1", headers=API_HEADERS) as r:
        assert markers(await r.json()) == []


MODELS = ["claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5", "claude-sonnet-4-6",
          "claude-opus-4-7", "claude-opus-5"]  # fmt: skip


def agent_turn(model: str) -> dict[str, Any]:
    """Tools, a system prompt, and a conversation with thinking and tool calls, long
    enough for every model's minimum, with one breakpoint of the client's own."""
    tools = [
        {
            "name": "search",
            "description": text(300, "search"),
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
    uses = [
        {"type": "tool_use", "id": f"toolu_{i}", "name": "search", "input": {"q": str(i)}}
        for i in range(9)
    ]
    results = [
        {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": text(40, str(i))}
        for i in range(9)
    ]
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": text(5200, "report")},
    }
    return {
        "model": model, "max_tokens": 100, "tools": tools,
        "system": [{"type": "text", "text": "You are a research assistant.",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": [document, {"type": "text", "text": "Summarise it."}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should search.", "signature": "sig"},
                {"type": "text", "text": "Searching."}, *uses]},
            {"role": "user", "content": [*results, {"type": "text", "text": "Go on."}]},
        ],
    }  # fmt: skip


@pytest.mark.parametrize("version", ["2023-06-01", "2026-10-21"])
async def test_the_simulator_takes_every_request_the_stage_makes(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession, version: str
) -> None:
    """Old and new models, minimums from 512 to 4,096 tokens, both API versions; sent
    twice, the second reads what the first wrote."""
    sim = await start_sim(journal=4)
    gateway = await start_gateway(sim.url)
    for model in MODELS:
        body = agent_turn(model)
        for _ in range(2):
            status, answer, header = await post(
                http, gateway, body, **{"anthropic-version": version}
            )
            assert status == 200, (model, answer)
            # The end, the previous turn's end (21 blocks back), and the tool or the last
            # tool result, by the model's minimum.
            assert header is not None and header.startswith("added=3; at="), (model, header)
        upstream = sent(sim)[-1].body
        assert len(markers(upstream)) == 4
        assert answer["usage"]["cache_read_input_tokens"] > 4000, model


MALFORMED = [
    [{"role": "user", "content": [{"type": ["text"], "text": "Which shelf?"}]}],
    [{"role": "user", "content": [{"type": {"text": 1}, "text": "Which shelf?"}]}],
    [{"role": {"r": 1}, "content": "Which shelf?"}],
    [{"role": ["user"], "content": [{"type": "text", "text": "Which shelf?"}]}],
]


@pytest.mark.parametrize("messages", MALFORMED)
async def test_a_type_or_role_that_is_no_string_is_the_apis_400(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    messages: list[Any],
) -> None:
    """A list or an object where a block's type or a message's role goes: the API's
    400, caching on or off (the simulator answers it as the API does), never a 500."""
    sim = await start_sim()
    on = await start_gateway(sim.url)
    off = await start_gateway(sim.url, prompt_caching=PromptCacheSettings(enabled=False))
    for gateway in (on, off):
        status, answer, _ = await post(http, gateway, long_request(messages=messages))
        assert status == 400, answer
        assert answer["error"]["type"] == "invalid_request_error"


def nested_marks_request() -> dict[str, Any]:
    """A long system and four breakpoints of the client's, all on nested blocks: in a
    tool result (one of them in a search result inside it), in a document of content
    blocks, in a search result."""
    mark = {"type": "ephemeral"}

    def marked(words: str) -> dict[str, Any]:
        return {"type": "text", "text": words, "cache_control": mark}

    def found(words: str, content: list[Any]) -> dict[str, Any]:
        return {"type": "search_result", "source": "https://example.com/shelves",
                "title": words, "content": content}  # fmt: skip

    return long_request(
        tools=[{"name": "search", "input_schema": {"type": "object"}}],
        messages=[
            {"role": "user", "content": "Which shelf?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "x"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [found("Shelves", [marked("Shelf 4")]), marked("Also shelf 5")]},
                {"type": "document", "source": {"type": "content", "content": [marked("Map")]}},
                found("Rules", [marked("Quiet")]),
                {"type": "text", "text": "So which one?"},
            ]},
        ],
    )  # fmt: skip


async def test_the_clients_nested_breakpoints_count_toward_the_four(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """The API counts every block that carries cache_control, nested ones too: four of
    the client's leave no room, whatever the system's length."""
    sim = await start_sim(journal=2)
    gateway = await start_gateway(sim.url)
    request = nested_marks_request()
    status, answer, header = await post(http, gateway, request)
    assert (status, header) == (200, "added=0; reason=full"), answer
    assert len(markers(sent(sim)[-1].body)) == 4
    # One more is one too many for the simulator, as for the API.
    request["messages"][2]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    status, answer, header = await post(http, gateway, request)
    assert (status, header) == (400, "added=0; reason=full")
    assert answer["error"]["message"].endswith("Found 5.")
