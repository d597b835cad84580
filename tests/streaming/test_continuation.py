"""Answers continued past max_tokens: one message, the text one uncapped call would give."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from claude_proxy.config import RetrySettings
from claude_proxy.server import RunningServer
from claude_proxy.sim.bpe import text_tokens
from claude_proxy.streaming.continuation import (
    CONTINUE_PROMPT,
    build_continuation,
    refuses_prefill,
)
from tests.conftest import SIM_KEY, StartGateway
from tests.helpers import API_HEADERS, message_body
from tests.sse import parse_events
from tests.streaming.test_healing import Events, assert_one_well_formed_message, text_of

FAST = RetrySettings(base_delay=0.01, max_delay=0.05)
MODELS = ["claude-haiku-4-5", "claude-sonnet-4-6"]  # assistant prefill; continue turn
ANSWER = "150"  # tokens: four parts of max_tokens 40


def continued(n: int, **extra: str) -> dict[str, str]:
    return {
        **API_HEADERS,
        "x-sim-answer-tokens": ANSWER,
        "x-proxy-max-continuations": str(n),
        **extra,
    }


async def sse(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[Events, str | None]:
    async with http.post(f"{url}/v1/messages", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        return parse_events(await r.read()), r.headers.get("x-proxy-stream-id")


async def uncapped(http: aiohttp.ClientSession, sim: RunningServer, body: dict[str, Any]) -> Events:
    headers = {**API_HEADERS, "x-api-key": SIM_KEY, "x-sim-answer-tokens": ANSWER}
    events, _ = await sse(http, sim.url, {**body, "max_tokens": 1000, "stream": True}, headers)
    return events


@pytest.mark.parametrize("model", MODELS)
async def test_a_stream_is_continued_into_the_whole_answer(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession, model: str
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST)
    body = message_body(f"Continue {model}", model=model, stream=True, max_tokens=40)
    expected = await uncapped(http, sim, body)
    events, _ = await sse(http, gateway.url, body, continued(3))
    assert_one_well_formed_message(events)
    assert text_of(events) == text_of(expected)
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    # Each part reports its own usage; a part re-generates the word its prefill was cut in.
    true = expected[-2][1]["usage"]["output_tokens"]
    assert true <= events[-2][1]["usage"]["output_tokens"] <= true + 4 * 3
    async with http.get(f"{sim.url}/sim/stats") as r:
        assert (await r.json())["requests"] == 1 + 4  # the reference, then four parts


@pytest.mark.parametrize("model", MODELS)
async def test_a_json_answer_is_continued_through_the_sdk(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession, model: str
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST)
    body = message_body(f"Continue JSON {model}", model=model, max_tokens=40)
    expected = text_of(await uncapped(http, sim, body))
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0)
    message = await client.messages.create(
        **body, extra_headers={"x-sim-answer-tokens": ANSWER, "x-proxy-max-continuations": "3"}
    )
    assert len(message.content) == 1
    assert message.content[0].text == expected  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens >= text_tokens(expected)


async def test_too_few_continuations_end_honestly_at_max_tokens(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST)
    body = message_body("Only one more", stream=True, max_tokens=40)
    full = text_of(await uncapped(http, sim, body))
    events, _ = await sse(http, gateway.url, body, continued(1))
    assert_one_well_formed_message(events)
    text = text_of(events)
    assert full.startswith(text) and len(text) < len(full)
    assert text_tokens(text) <= 2 * 40
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


async def test_a_continued_answer_is_healed_when_it_breaks_too(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST)
    body = message_body("Break and continue", model="claude-sonnet-4-6", stream=True, max_tokens=40)
    expected = await uncapped(http, sim, body)
    cut = {"x-sim-fault": "cut:7", "x-sim-fault-times": "1", "x-sim-fault-key": uuid.uuid4().hex}
    events, _ = await sse(http, gateway.url, body, continued(5, **cut))
    assert_one_well_formed_message(events)
    assert text_of(events) == text_of(expected)
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


async def test_a_continued_stream_resumes_like_any_other(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST)
    body = message_body("Resume me", stream=True, max_tokens=40)
    events, stream_id = await sse(http, gateway.url, body, continued(3))
    async with http.get(
        f"{gateway.url}/v1/streams/{stream_id}",
        headers={**API_HEADERS, "last-event-id": f"{stream_id}:5"},
    ) as r:
        assert parse_events(await r.read()) == events[5:]


async def test_a_tool_call_cut_by_max_tokens_is_not_continued(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, retry=FAST)
    tool = {
        "name": "lookup",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    body = message_body(
        "Look it up", stream=True, max_tokens=12, tools=[tool], tool_choice={"type": "any"}
    )
    events, _ = await sse(http, gateway.url, body, continued(3))
    assert_one_well_formed_message(events)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    async with http.get(f"{sim.url}/sim/stats") as r:
        assert (await r.json())["requests"] == 1


@pytest.mark.parametrize("value", ["-1", "three", "11"])
async def test_a_bad_continuation_count_is_a_clear_400(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession, value: str
) -> None:
    gateway = await start_gateway(sim.url)
    headers = {**API_HEADERS, "x-proxy-max-continuations": value}
    async with http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=headers) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert "x-proxy-max-continuations" in error["message"]


# -- the continuation request on its own ---------------------------------------------


def conversation(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": list(messages)}


USER = {"role": "user", "content": "Tell me"}


def test_a_prefill_continues_from_the_last_whole_word() -> None:
    built = build_continuation(
        conversation(USER), "The river ran  ", continue_turn=False, max_tokens=60
    )
    assert built is not None
    body = orjson.loads(built.body)
    assert body["messages"] == [USER, {"role": "assistant", "content": "The river ran"}]
    assert body["max_tokens"] == 60
    assert (built.stripped_tail, built.via_continue_turn) == ("  ", False)


def test_a_cut_inside_a_word_continues_before_it() -> None:
    built = build_continuation(
        conversation(USER), "The river ra", continue_turn=True, max_tokens=None
    )
    assert built is not None
    body = orjson.loads(built.body)
    assert body["messages"][-2:] == [
        {"role": "assistant", "content": "The river"},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]
    assert body["max_tokens"] == 100  # None keeps the request's own
    assert built.stripped_tail == " ra" and built.via_continue_turn


def test_text_without_spaces_is_cut_where_it_is() -> None:
    built = build_continuation(
        conversation(USER), "网关在生产环境中", continue_turn=False, max_tokens=9
    )
    assert built is not None
    assert orjson.loads(built.body)["messages"][-1]["content"] == "网关在生产环境中"
    assert built.stripped_tail == ""


def test_the_clients_own_prefill_is_joined_with_what_was_sent() -> None:
    prefill = {"role": "assistant", "content": [{"type": "text", "text": "Answer: "}]}
    built = build_continuation(
        conversation(USER, prefill), "forty two", continue_turn=False, max_tokens=5
    )
    assert built is not None
    assert orjson.loads(built.body)["messages"] == [
        USER,
        {"role": "assistant", "content": "Answer: forty"},
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": []},
        {"model": "m", "messages": "nope"},
        conversation(USER, {"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]}),
    ],
)
def test_a_conversation_that_cannot_be_extended_gives_none(body: dict[str, Any]) -> None:
    assert build_continuation(body, "text", continue_turn=False, max_tokens=5) is None


def test_nothing_sent_yet_asks_the_same_question_again() -> None:
    built = build_continuation(conversation(USER), "", continue_turn=True, max_tokens=5)
    assert built is not None
    assert orjson.loads(built.body)["messages"] == [USER]
    assert not built.via_continue_turn


@pytest.mark.parametrize(
    ("model", "refuses"),
    [
        ("claude-haiku-4-5", False),
        ("claude-sonnet-4-5-20250929", False),
        ("claude-sonnet-4-6", True),
        ("claude-opus-4-8", True),
        ("claude-opus-5-5", True),
    ],
)
def test_which_models_refuse_a_prefill(model: str, refuses: bool) -> None:
    assert refuses_prefill(model) is refuses


async def test_a_tenant_default_continues_without_the_header(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(
        sim.url,
        retry=FAST,
        tenants=[
            {"name": "long", "keys": ["key-long"], "max_continuations": 5},
            {"name": "plain", "keys": ["key-plain"]},
        ],
    )
    body = message_body("A tenant's default", stream=True, max_tokens=40)
    full = text_of(await uncapped(http, sim, body))
    headers = {**API_HEADERS, "x-sim-answer-tokens": ANSWER}
    events, _ = await sse(http, gateway.url, body, {**headers, "x-api-key": "key-long"})
    assert text_of(events) == full
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    events, _ = await sse(http, gateway.url, body, {**headers, "x-api-key": "key-plain"})
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"  # no default: one part
    # The header still decides when it is sent: 0 turns the tenant's default off.
    zero = {**headers, "x-api-key": "key-long", "x-proxy-max-continuations": "0"}
    events, _ = await sse(http, gateway.url, body, zero)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
