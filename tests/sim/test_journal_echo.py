"""The journal of received request bodies (app[JOURNAL], /sim/journal) and echo mode."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner

from claude_proxy.server import start_server
from claude_proxy.sim import JOURNAL, SimSettings, create_sim_app, simulate
from claude_proxy.sim.bpe import text_tokens, tokenize, truncate
from claude_proxy.sim.state import STATE

from .conftest import MODEL, Sim, StartSim, body, headers, parse_sse

# Mixed scripts, digits, punctuation, a surrogate-pair emoji and odd whitespace: long
# enough (> 1024 characters) to take the tokenizer's uncached path.
LONG_MIXED = (
    "客户张伟的电话是 138-0013-8000，邮箱 zhang.wei@example.com。"
    "Please summarise: the meeting on 2026-03-14 covered Q1 revenue (¥1,234,567.89) "
    "and the migration plan 迁移计划 for the 北京 data centre.\n\n"
    "  Indented line\twith a tab — and an em dash; 日本語もあります。😀 done.\n"
) * 12

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a place",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


async def _post(
    sim: Sim, http: aiohttp.ClientSession, payload: Any, path: str = "/v1/messages"
) -> tuple[int, Any, str]:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    async with http.post(f"{sim.url}{path}", data=data, headers=headers()) as r:
        return r.status, await r.json(), r.headers["request-id"]


async def _stream(
    sim: Sim, http: aiohttp.ClientSession, payload: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    async with http.post(
        f"{sim.url}/v1/messages", headers=headers(), json={**payload, "stream": True}
    ) as r:
        assert r.status == 200
        return parse_sse(await r.text())


def _streamed_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(
        e["delta"]["text"]
        for n, e in events
        if n == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )


def _text(message: dict[str, Any]) -> str:
    return "".join(b["text"] for b in message["content"] if b["type"] == "text")


# -- journal -----------------------------------------------------------------------------


async def test_journal_holds_the_exact_bodies(start_sim: StartSim) -> None:
    sim = await start_sim(journal=10)
    raw = b'{"model":  "claude-haiku-4-5", "max_tokens": 20,\n "messages": [{"role": "user",'
    raw += b' "content": "My SSN is 078-05-1120"}]}'
    counting = {"model": MODEL, "messages": [{"role": "user", "content": "Count me, Zoë 你好"}]}
    counted = orjson.dumps(counting)
    async with aiohttp.ClientSession() as http:
        status, _, first_id = await _post(sim, http, raw)
        assert status == 200
        status, _, second_id = await _post(sim, http, counted, "/v1/messages/count_tokens")
        assert status == 200
    journal = sim.app[JOURNAL]
    assert journal is sim.state.journal
    assert journal.capacity == 10
    first, second = journal.entries
    assert (first.path, first.request_id, first.raw) == ("/v1/messages", first_id, raw)
    assert first.body == orjson.loads(raw)
    assert first.body["messages"][0]["content"] == "My SSN is 078-05-1120"
    assert (second.path, second.request_id, second.raw) == (
        "/v1/messages/count_tokens",
        second_id,
        counted,
    )
    assert second.body == counting
    assert journal.last is second


async def test_journal_is_bounded_to_the_latest(start_sim: StartSim) -> None:
    sim = await start_sim(journal=3)
    async with aiohttp.ClientSession() as http:
        for i in range(5):
            status, _, _ = await _post(sim, http, body(f"question {i}", max_tokens=5))
            assert status == 200
    entries = sim.app[JOURNAL].entries
    assert len(entries) == 3
    assert [e.body["messages"][0]["content"] for e in entries] == [
        "question 2",
        "question 3",
        "question 4",
    ]


async def test_journal_records_what_the_simulator_rejects(start_sim: StartSim) -> None:
    sim = await start_sim(journal=5)
    async with aiohttp.ClientSession() as http:
        status, _, _ = await _post(sim, http, b"{not json")
        assert status == 400
        status, _, _ = await _post(sim, http, body(max_tokens=-1))
        assert status == 400
        async with http.post(
            f"{sim.url}/v1/messages", json=body(), headers=headers(x_sim_fault="529")
        ) as r:
            assert r.status == 529
    first, second, third = sim.app[JOURNAL].entries
    assert (first.raw, first.body) == (b"{not json", None)
    assert second.body["max_tokens"] == -1
    assert third.body == body()


async def test_journal_off_by_default(sim: Sim, http: aiohttp.ClientSession) -> None:
    status, _, _ = await _post(sim, http, body(max_tokens=5))
    assert status == 200
    assert sim.app[JOURNAL].capacity == 0
    assert len(sim.app[JOURNAL]) == 0
    async with http.get(f"{sim.url}/sim/journal") as r:
        assert await r.json() == {"capacity": 0, "entries": []}


async def test_get_and_delete_sim_journal(start_sim: StartSim) -> None:
    sim = await start_sim(journal=4)
    payload = body("Alice <alice@example.com> asked 你好", max_tokens=5)
    async with aiohttp.ClientSession() as http:
        status, _, request_id = await _post(sim, http, payload)
        assert status == 200
        async with http.get(f"{sim.url}/sim/journal") as r:
            assert r.status == 200
            assert r.headers["content-type"] == "application/json"
            listed = await r.json()
        assert listed == {
            "capacity": 4,
            "entries": [
                {
                    "path": "/v1/messages",
                    "request_id": request_id,
                    "raw": orjson.dumps(payload).decode(),
                    "body": payload,
                }
            ],
        }
        async with http.delete(f"{sim.url}/sim/journal") as r:
            assert r.status == 200
            assert await r.json() == {"capacity": 4, "entries": []}
        assert len(sim.app[JOURNAL]) == 0
        async with http.get(f"{sim.url}/sim/journal") as r:
            assert (await r.json())["entries"] == []
        # /sim/ routes are not counted as API traffic.
        async with http.get(f"{sim.url}/sim/stats") as r:
            assert (await r.json())["requests"] == 1


async def test_journal_through_a_running_server(http: aiohttp.ClientSession) -> None:
    """The shape tests elsewhere use: RunningServer.runner.app[JOURNAL]."""
    server = await start_server(
        create_sim_app(SimSettings(speed=0.0, journal=2)), "127.0.0.1", 0, shutdown_timeout=0.1
    )
    try:
        async with http.post(
            f"{server.url}/v1/messages", json=body(max_tokens=5), headers=headers()
        ) as r:
            assert r.status == 200
        assert [e.body for e in server.runner.app[JOURNAL]] == [body(max_tokens=5)]
    finally:
        await server.stop()


def test_negative_journal_rejected() -> None:
    with pytest.raises(ValueError, match="journal"):
        SimSettings(journal=-1)


# -- echo --------------------------------------------------------------------------------


async def test_echo_json_and_stream(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True)
    text = "Echo this back: Bob's card is 4111 1111 1111 1111."
    async with aiohttp.ClientSession() as http:
        status, message, _ = await _post(sim, http, body(text))
        events = await _stream(sim, http, body(text))
    assert status == 200
    assert message["content"] == [{"type": "text", "text": text}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == text_tokens(text)
    assert _streamed_text(events) == text
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == text_tokens(text)


async def test_echo_joins_text_blocks_of_the_last_user_turn(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True)
    messages = [
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "first part"},
                {"type": "text", "text": "second part", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ]
    async with aiohttp.ClientSession() as http:
        _, message, _ = await _post(sim, http, body(messages=messages))
    assert _text(message) == "first part\nsecond part"


async def test_echo_of_tool_results(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True)
    use = {"type": "tool_use", "id": "toolu_01a", "name": "get_weather", "input": {}}
    use_b = {**use, "id": "toolu_01b"}
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [use, use_b]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01a", "content": "Paris: sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01b",
                    "content": [{"type": "text", "text": "Rome: rain, 12°C"}],
                },
            ],
        },
    ]
    async with aiohttp.ClientSession() as http:
        _, message, _ = await _post(sim, http, body(messages=messages, tools=[WEATHER]))
    assert message["content"] == [{"type": "text", "text": "Paris: sunny\nRome: rain, 12°C"}]
    assert message["stop_reason"] == "end_turn"


async def test_echo_wins_over_a_tool_call(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True)
    payload = body("Use get_weather for Paris", tools=[WEATHER])
    async with aiohttp.ClientSession() as http:
        _, message, _ = await _post(sim, http, payload)
    assert message["content"] == [{"type": "text", "text": "Use get_weather for Paris"}]
    assert message["stop_reason"] == "end_turn"


async def test_echo_cut_by_max_tokens(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True)
    text = "The quick brown fox jumps over the extraordinarily lazy dog, twice over."
    assert text_tokens(text) > 7
    expected = "".join(truncate(tokenize(text), 7))
    async with aiohttp.ClientSession() as http:
        _, message, _ = await _post(sim, http, body(text, max_tokens=7))
        events = await _stream(sim, http, body(text, max_tokens=7))
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"]["output_tokens"] == 7
    assert _text(message) == expected
    assert text.startswith(expected) and expected != text
    assert _streamed_text(events) == expected
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"]["output_tokens"] == 7


async def test_echo_honours_stop_sequences(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True)
    text = "alpha beta STOP gamma"
    async with aiohttp.ClientSession() as http:
        _, message, _ = await _post(sim, http, body(text, stop_sequences=["STOP"]))
    assert _text(message) == "alpha beta "
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "STOP")


async def test_echo_continues_a_matching_prefill(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True)
    text = "Repeat after me: the rain in Spain stays mainly in the plain."
    messages = [
        {"role": "user", "content": text},
        {"role": "assistant", "content": "Repeat after me: the ra"},
    ]
    async with aiohttp.ClientSession() as http:
        _, message, _ = await _post(sim, http, body(messages=messages))
    assert _text(message) == "in in Spain stays mainly in the plain."
    assert message["stop_reason"] == "end_turn"


async def test_echo_of_a_long_chinese_and_english_text(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True)
    assert len(LONG_MIXED) > 1024
    payload = body(LONG_MIXED, max_tokens=20000)
    async with aiohttp.ClientSession() as http:
        _, message, _ = await _post(sim, http, payload)
        events = await _stream(sim, http, payload)
    assert _text(message) == LONG_MIXED
    assert message["usage"]["output_tokens"] == text_tokens(LONG_MIXED)
    assert message["stop_reason"] == "end_turn"
    assert _streamed_text(events) == LONG_MIXED
    assert len([n for n, _ in events if n == "content_block_delta"]) > 100
    assert events[-2][1]["usage"]["output_tokens"] == text_tokens(LONG_MIXED)


async def test_echo_and_journal_together(start_sim: StartSim) -> None:
    sim = await start_sim(echo=True, journal=1)
    async with aiohttp.ClientSession() as http:
        _, message, _ = await _post(sim, http, body("what reached you?"))
    assert _text(message) == "what reached you?"
    assert sim.app[JOURNAL].entries[0].body["messages"][0]["content"] == "what reached you?"


def test_cli_echo_and_journal_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, SimSettings] = {}

    def fake_run_app(app: web.Application, **kwargs: Any) -> None:
        captured["settings"] = app[STATE].settings
        assert app[JOURNAL].capacity == 50
        kwargs["loop"].close()

    monkeypatch.setattr(web, "run_app", fake_run_app)
    result = CliRunner().invoke(simulate, ["--echo", "--journal", "50"])
    assert result.exit_code == 0, result.output
    assert (captured["settings"].echo, captured["settings"].journal) == (True, 50)
