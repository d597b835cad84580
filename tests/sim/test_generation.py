"""Deterministic answers: exact lengths, truncation, stop sequences, prefill and continue."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from claude_proxy.sim.generation import Reply, generate
from claude_proxy.sim.settings import SimSettings
from claude_proxy.sim.text import answer_pieces, split_after, tail_words
from claude_proxy.sim.validation import parse_request

from .conftest import MODEL, NEW_MODEL, Sim, body

QUESTION = [{"role": "user", "content": "Tell me about rivers."}]


def _reply(
    messages: list[dict[str, Any]],
    *,
    answer_tokens: int | None = None,
    settings: SimSettings | None = None,
    **fields: Any,
) -> Reply:
    payload = {"model": MODEL, "max_tokens": 4096, "messages": messages, **fields}
    req = parse_request(orjson.dumps(payload), "2023-06-01")
    return generate(req, settings or SimSettings(), answer_tokens)


def _text(reply: Reply) -> str:
    return "".join(b.text for b in reply.blocks if b.kind == "text")


def test_same_conversation_same_answer() -> None:
    assert _text(_reply(QUESTION)) == _text(_reply(QUESTION))
    other = [{"role": "user", "content": "Tell me about mountains."}]
    assert _text(_reply(QUESTION)) != _text(_reply(other))


def test_cache_markers_do_not_change_the_answer() -> None:
    marked = [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "Tell me about rivers.",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        }
    ]
    assert _text(_reply(marked)) == _text(_reply(QUESTION))


def test_natural_length_in_range() -> None:
    for i in range(20):
        reply = _reply([{"role": "user", "content": f"question {i}"}])
        assert 40 <= reply.output_tokens <= 300
        assert reply.stop_reason == "end_turn"


@pytest.mark.parametrize("n", [1, 7, 5000])
def test_answer_tokens_exact(n: int) -> None:
    reply = _reply(QUESTION, answer_tokens=n, max_tokens=8000)
    assert reply.output_tokens == n
    assert reply.stop_reason == "end_turn"


def test_pieces_are_one_word_each() -> None:
    pieces = answer_pieces(42, 500)
    assert not pieces[0][0].isspace()
    assert all(p[0] in " \n" and len(p.split()) == 1 for p in pieces[1:])
    assert pieces[-1].endswith(".")
    assert answer_pieces(42, 600)[:499] == pieces[:499]  # longer answers extend shorter ones


def test_max_tokens_truncation() -> None:
    full = _text(_reply(QUESTION, answer_tokens=100))
    cut = _reply(QUESTION, answer_tokens=100, max_tokens=30)
    assert cut.stop_reason == "max_tokens"
    assert cut.output_tokens == 30
    assert full.startswith(_text(cut))
    assert len(_text(cut).split()) == 30


def test_stop_sequence_cuts_before_it() -> None:
    full = _text(_reply(QUESTION, answer_tokens=200))
    word = full.split()[10]
    reply = _reply(QUESTION, answer_tokens=200, stop_sequences=["nomatch", word])
    assert reply.stop_reason == "stop_sequence"
    assert reply.stop_sequence == word
    assert _text(reply) == full[: full.index(word)]


def test_stop_sequence_after_max_tokens_loses() -> None:
    full = _text(_reply(QUESTION, answer_tokens=200))
    late = " ".join(full.split()[150:152])
    reply = _reply(QUESTION, answer_tokens=200, max_tokens=20, stop_sequences=[late])
    assert reply.stop_reason == "max_tokens"


def test_prefill_property_every_cut_point() -> None:
    """Joining the stripped prefix and its continuation gives the answer back, always."""
    full_reply = _reply(QUESTION, answer_tokens=60)
    answer = _text(full_reply)
    for k in range(1, len(answer)):
        prefix = answer[:k].rstrip()
        if not prefix:
            continue
        rest = _reply([*QUESTION, {"role": "assistant", "content": prefix}], answer_tokens=60)
        assert prefix + _text(rest) == answer, k
        assert rest.stop_reason == "end_turn"


def test_prefill_usage_counts_only_new_tokens() -> None:
    answer = _text(_reply(QUESTION, answer_tokens=50))
    prefix = " ".join(answer.split(" ")[:20])
    rest = _reply([*QUESTION, {"role": "assistant", "content": prefix}], answer_tokens=50)
    assert rest.output_tokens == 30


def test_prefill_then_max_tokens_chain_rebuilds_answer() -> None:
    """What the gateway does past max_tokens: re-request with the text so far as prefill."""
    answer = _text(_reply(QUESTION, answer_tokens=300))
    got = ""
    for _ in range(20):
        messages = list(QUESTION)
        if got:
            messages.append({"role": "assistant", "content": got.rstrip()})
        part = _reply(messages, answer_tokens=300, max_tokens=37)
        got = (got.rstrip() if got else "") + _text(part)
        if part.stop_reason == "end_turn":
            break
    assert got == answer


def test_foreign_prefill_is_deterministic() -> None:
    messages = [*QUESTION, {"role": "assistant", "content": "Completely unrelated start"}]
    first, second = _text(_reply(messages)), _text(_reply(messages))
    assert first == second
    assert first.startswith(" ")


@pytest.mark.parametrize("instruction", ["continue", "Continue", "Please continue.", " CONTINUE! "])
def test_continue_turn_equals_prefill(instruction: str) -> None:
    answer = _text(_reply(QUESTION, answer_tokens=80))
    partial = answer[:137].rstrip()
    messages = [
        *QUESTION,
        {"role": "assistant", "content": partial},
        {"role": "user", "content": instruction},
    ]
    assert partial + _text(_reply(messages, answer_tokens=80)) == answer


def test_continue_turn_chain() -> None:
    answer = _text(_reply(QUESTION, answer_tokens=80))
    one = answer[:100].rstrip()
    first = _reply(
        [*QUESTION, {"role": "assistant", "content": one}, {"role": "user", "content": "continue"}],
        answer_tokens=80,
        max_tokens=10,
    )
    two = _text(first)
    messages = [
        *QUESTION,
        {"role": "assistant", "content": one},
        {"role": "user", "content": "continue"},
        {"role": "assistant", "content": two},
        {"role": "user", "content": "continue"},
    ]
    assert one + two + _text(_reply(messages, answer_tokens=80)) == answer


def test_continue_overlap_repeats_words() -> None:
    answer = _text(_reply(QUESTION, answer_tokens=80))
    partial = answer[:120].rstrip()
    messages = [
        *QUESTION,
        {"role": "assistant", "content": partial},
        {"role": "user", "content": "continue"},
    ]
    settings = SimSettings(continue_overlap_words=3)
    reply = _text(_reply(messages, answer_tokens=80, settings=settings))
    overlap = "".join(tail_words(partial, 3))
    assert partial.endswith(overlap)
    assert reply.startswith(overlap)
    assert partial + reply[len(overlap) :] == answer


def test_split_after_keeps_word_tails() -> None:
    assert split_after(["Hello", " big", " world"], 7) == ["ig", " world"]
    assert split_after(["Hello", " big"], 5) == [" big"]
    assert split_after(["Hello"], 5) == []


def test_tool_use_forced() -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {
                "type": "object",
                "required": ["city", "days"],
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        }
    ]
    reply = _reply(QUESTION, tools=tools, tool_choice={"type": "any"})
    assert reply.stop_reason == "tool_use"
    assert [b.kind for b in reply.blocks] == ["text", "tool_use"]
    call = reply.blocks[1].to_api()
    assert str(call["id"]).startswith("toolu_01")
    assert call["name"] == "get_weather"
    arguments = call["input"]
    assert isinstance(arguments, dict)
    assert set(arguments) == {"city", "days"}
    assert orjson.loads(reply.blocks[1].text) == arguments
    again = _reply(QUESTION, tools=tools, tool_choice={"type": "any"})
    assert again.blocks[1].to_api() == call


def test_tool_auto_only_when_mentioned() -> None:
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    assert _reply(QUESTION, tools=tools).stop_reason == "end_turn"
    asked = [{"role": "user", "content": "Please use lookup now"}]
    assert _reply(asked, tools=tools).stop_reason == "tool_use"


def test_thinking_block_comes_first() -> None:
    reply = _reply(QUESTION, max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.kind for b in reply.blocks] == ["thinking", "text"]
    assert reply.blocks[0].signature


async def test_json_text_matches_across_calls(client: anthropic.AsyncAnthropic) -> None:
    first = await client.messages.create(**body())
    second = await client.messages.create(**body())
    assert first.content == second.content
    assert first.id != second.id
    assert first.id.startswith("msg_01")


async def test_answer_tokens_header(sim: Sim) -> None:
    async with sim.client(default_headers={"x-sim-answer-tokens": "3000"}) as client:
        message = await client.messages.create(**body(max_tokens=5000))
    assert message.usage.output_tokens == 3000
    assert message.stop_reason == "end_turn"


async def test_prefill_over_http(client: anthropic.AsyncAnthropic) -> None:
    full = await client.messages.create(**body())
    answer = full.content[0].text
    prefix = answer[:55].rstrip()
    rest = await client.messages.create(
        model=MODEL,
        max_tokens=1024,
        messages=[
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": prefix},
        ],
    )
    assert prefix + rest.content[0].text == answer  # type: ignore[union-attr]


async def test_continue_turn_over_http_on_no_prefill_model(
    client: anthropic.AsyncAnthropic,
) -> None:
    first = await client.messages.create(
        model=NEW_MODEL, max_tokens=15, messages=[{"role": "user", "content": "Hi"}]
    )
    assert first.stop_reason == "max_tokens"
    partial = first.content[0].text  # type: ignore[union-attr]
    rest = await client.messages.create(
        model=NEW_MODEL,
        max_tokens=1024,
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": partial},
            {"role": "user", "content": "continue"},
        ],
    )
    whole = await client.messages.create(
        model=NEW_MODEL, max_tokens=1024, messages=[{"role": "user", "content": "Hi"}]
    )
    assert partial + rest.content[0].text == whole.content[0].text  # type: ignore[union-attr]
