"""SSE: framing, the exact event order, usage placement, and equality with JSON replies."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import orjson

from claude_proxy.sim.bpe import text_tokens

from .conftest import Sim, body, headers, parse_sse

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "required": ["city"],
        "properties": {"city": {"type": "string"}},
    },
}


def _dump(blocks: list[Any]) -> list[dict[str, Any]]:
    """Blocks as dicts; the stream helper's ParsedTextBlock adds `parsed_output`."""
    return [b.model_dump(exclude={"parsed_output"}) for b in blocks]


async def _stream(
    sim: Sim, http: aiohttp.ClientSession, payload: dict[str, Any], **hdrs: str
) -> tuple[aiohttp.ClientResponse, list[tuple[str, dict[str, Any]]]]:
    async with http.post(
        f"{sim.url}/v1/messages", headers=headers(**hdrs), json={**payload, "stream": True}
    ) as resp:
        raw = await resp.text()
    return resp, parse_sse(raw)


async def test_event_order_and_framing(sim: Sim, http: aiohttp.ClientSession) -> None:
    resp, events = await _stream(sim, http, body(), x_sim_answer_tokens="20")
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["request-id"].startswith("req_")
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert len(names[3:-3]) >= 5  # 1-4 tokens per delta: 20 tokens are several events

    start = events[0][1]["message"]
    assert start["id"].startswith("msg_01")
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] > 0
    assert start["usage"]["output_tokens"] == 1
    assert "cache_read_input_tokens" in start["usage"]
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    streamed = "".join(e["delta"]["text"] for n, e in events if n == "content_block_delta")
    assert 20 <= delta["usage"]["output_tokens"] == text_tokens(streamed) <= 24
    assert delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]


async def test_stream_text_equals_json_text(sim: Sim, http: aiohttp.ClientSession) -> None:
    _, events = await _stream(sim, http, body(max_tokens=50))
    streamed = "".join(e["delta"]["text"] for n, e in events if n == "content_block_delta")
    async with http.post(
        f"{sim.url}/v1/messages", headers=headers(), json=body(max_tokens=50)
    ) as resp:
        message = await resp.json()
    assert message["content"] == [{"type": "text", "text": streamed}]
    assert events[-2][1]["delta"]["stop_reason"] == message["stop_reason"]
    assert events[-2][1]["usage"]["output_tokens"] == message["usage"]["output_tokens"]


async def test_sdk_stream_final_message(client: anthropic.AsyncAnthropic) -> None:
    plain = await client.messages.create(**body(max_tokens=40, stop_sequences=["zzz"]))
    async with client.messages.stream(**body(max_tokens=40, stop_sequences=["zzz"])) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == plain.content[0].text
    assert _dump(final.content) == _dump(plain.content)
    assert final.stop_reason == plain.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 40


async def test_stream_stop_sequence(client: anthropic.AsyncAnthropic) -> None:
    plain = await client.messages.create(**body())
    word = plain.content[0].text.split()[5]
    async with client.messages.stream(**body(stop_sequences=[word])) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "stop_sequence"
    assert final.stop_sequence == word
    assert final.content[0].text == plain.content[0].text.split(word)[0]  # type: ignore[union-attr]


async def test_long_answer_streams_many_events(sim: Sim, http: aiohttp.ClientSession) -> None:
    _, events = await _stream(sim, http, body(max_tokens=8000), x_sim_answer_tokens="4000")
    deltas = [e for n, e in events if n == "content_block_delta"]
    assert len(deltas) > 1000
    text = "".join(d["delta"]["text"] for d in deltas)
    assert 4000 <= events[-2][1]["usage"]["output_tokens"] == text_tokens(text) <= 4004
    assert 1.5 <= text_tokens(text) / len(text.split()) <= 1.8  # not one token a word


async def test_stream_cut_by_max_tokens(sim: Sim, http: aiohttp.ClientSession) -> None:
    _, events = await _stream(sim, http, body(max_tokens=33), x_sim_answer_tokens="200")
    text = "".join(e["delta"]["text"] for n, e in events if n == "content_block_delta")
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"]["output_tokens"] == 33
    assert text_tokens(text) <= 33


async def test_tool_use_stream(sim: Sim, http: aiohttp.ClientSession) -> None:
    payload = body(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    _, events = await _stream(sim, http, payload)
    starts = [e["content_block"] for n, e in events if n == "content_block_start"]
    assert starts[0] == {"type": "text", "text": ""}
    assert starts[1]["type"] == "tool_use"
    assert starts[1]["id"].startswith("toolu_01")
    assert starts[1]["input"] == {}
    fragments = [
        e["delta"]["partial_json"]
        for n, e in events
        if n == "content_block_delta" and e["index"] == 1
    ]
    assert fragments[0] == ""
    arguments = orjson.loads("".join(fragments))
    assert set(arguments) == {"city"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_sdk_tool_use_json_equals_stream(client: anthropic.AsyncAnthropic) -> None:
    payload = body(tools=[WEATHER], tool_choice={"type": "any"})
    plain = await client.messages.create(**payload)
    async with client.messages.stream(**payload) as stream:
        final = await stream.get_final_message()
    assert _dump(final.content) == _dump(plain.content)
    assert final.stop_reason == "tool_use"


async def test_thinking_stream(sim: Sim, http: aiohttp.ClientSession) -> None:
    payload = body(max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024})
    _, events = await _stream(sim, http, payload)
    block0 = [e for n, e in events if e.get("index") == 0]
    assert block0[0]["content_block"]["type"] == "thinking"
    kinds = [e["delta"]["type"] for e in block0 if e["type"] == "content_block_delta"]
    assert kinds[-1] == "signature_delta"
    assert set(kinds[:-1]) == {"thinking_delta"}
    assert block0[-1]["type"] == "content_block_stop"
    second = [e for n, e in events if n == "content_block_start"][1]
    assert second["content_block"]["type"] == "text"


async def test_sdk_thinking_final_message(client: anthropic.AsyncAnthropic) -> None:
    payload = body(model="claude-opus-4-7", max_tokens=3000, thinking={"type": "adaptive"})
    plain = await client.messages.create(**payload)
    async with client.messages.stream(**payload) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert _dump(final.content) == _dump(plain.content)
