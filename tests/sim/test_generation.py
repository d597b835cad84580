"""Deterministic answers: exact lengths, truncation, stop sequences, prefill and continue."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from claude_proxy.sim.bpe import text_tokens, tokenize
from claude_proxy.sim.generation import Reply, generate
from claude_proxy.sim.settings import SimSettings
from claude_proxy.sim.text import answer_pieces, split_after, tail_words
from claude_proxy.sim.validation import parse_request

from .conftest import MODEL, NEW_MODEL, Sim, body

QUESTION = [{"role": "user", "content": "Tell me about rivers."}]
LAST_WORD_MAX = 4  # the word that reaches the requested length: "\n\n" + up to 3 chunks


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
        assert 40 <= reply.output_tokens <= 300 + LAST_WORD_MAX
        assert reply.stop_reason == "end_turn"


@pytest.mark.parametrize("n", [1, 2, 7, 60, 5000])
def test_answer_tokens_are_a_minimum_ending_on_a_whole_word(n: int) -> None:
    for question in ("Tell me about rivers.", "Why?", "Hi"):
        reply = _reply([{"role": "user", "content": question}], answer_tokens=n, max_tokens=8000)
        text = _text(reply)
        assert n <= reply.output_tokens <= n + LAST_WORD_MAX
        assert reply.output_tokens == text_tokens(text)
        assert text.endswith(".") and text[-2].isalpha()
        assert reply.stop_reason == "end_turn"


def test_pieces_are_one_word_each() -> None:
    pieces = answer_pieces(42, 500)
    assert not pieces[0][0].isspace()
    assert all(p[0] in " \n" and len(p.split()) == 1 for p in pieces[1:])
    assert pieces[-1].endswith(".")
    longer = answer_pieces(42, 600)
    assert longer[: len(pieces) - 1] == pieces[:-1]  # longer answers extend shorter ones
    # Pieces are token boundaries: their tokens in a row are the answer's tokens.
    assert [t for p in longer for t in tokenize(p)] == tokenize("".join(longer))


def test_max_tokens_cuts_at_token_granularity() -> None:
    full = _text(_reply(QUESTION, answer_tokens=100))
    inside_a_word = 0
    for budget in range(1, 60):
        cut = _reply(QUESTION, answer_tokens=100, max_tokens=budget)
        text = _text(cut)
        assert cut.stop_reason == "max_tokens"
        assert cut.output_tokens == budget
        assert full.startswith(text)
        assert text_tokens(text) <= budget
        if text[-1:].isalpha() and full[len(text)].isalpha():
            inside_a_word += 1
    assert inside_a_word >= 5  # long words are several tokens: cuts land inside them


def test_deltas_are_one_to_four_whole_tokens() -> None:
    reply = _reply(QUESTION, answer_tokens=300, max_tokens=251)
    tokens = tokenize(_text(reply))
    i = 0
    for text, n in reply.blocks[0].deltas:
        assert 1 <= n <= 4
        assert text == "".join(tokens[i : i + n])
        i += n
    assert i == len(tokens) == reply.output_tokens == 251


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
    whole = _reply(QUESTION, answer_tokens=50)
    answer = _text(whole)
    prefix = " ".join(answer.split(" ")[:20])  # ends on a whole word: a token boundary
    rest = _reply([*QUESTION, {"role": "assistant", "content": prefix}], answer_tokens=50)
    assert rest.output_tokens == whole.output_tokens - text_tokens(prefix)


def test_prefill_cut_inside_a_token_counts_its_tail_once() -> None:
    answer = _text(_reply(QUESTION, answer_tokens=80))
    tokens = tokenize(answer)
    long = next(i for i, t in enumerate(tokens) if len(t.strip()) >= 3 and i > 5)
    cut = len("".join(tokens[:long])) + 2  # inside tokens[long], after its space
    rest = _reply([*QUESTION, {"role": "assistant", "content": answer[:cut]}], answer_tokens=80)
    assert _text(rest) == answer[cut:]
    assert rest.output_tokens == len(tokens) - long  # the tail is one token


def test_split_after_inside_cjk_and_emoji_text() -> None:
    """Cutting tokens at every character keeps whole characters and their extra tokens."""
    text = "Hello 你好，世界。这是一个测试 😀 internationalization!"
    tokens = tokenize(text)
    for k in range(len(text) + 1):
        rest = split_after(tokens, k)
        assert text[:k] + "".join(rest) == text
        assert not rest or rest[0] != ""


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


CHINESE = "你好，世界。这是一个测试"


@pytest.mark.parametrize("foreign", [CHINESE, "Completely unrelated start"])
def test_foreign_prefill_cut_inside_the_answer_round_trips(foreign: str) -> None:
    """A prefill that is not our answer: re-requests with more of the reply still join up."""
    whole = foreign + _text(_reply([*QUESTION, {"role": "assistant", "content": foreign}]))
    assert len(whole) > len(foreign) + 40
    for k in range(len(foreign) + 1, len(whole)):
        prefix = whole[:k].rstrip()
        rest = _reply([*QUESTION, {"role": "assistant", "content": prefix}])
        assert prefix + _text(rest) == whole, k
    continued = [
        *QUESTION,
        {"role": "assistant", "content": whole[: len(foreign) + 17]},
        {"role": "user", "content": "continue"},
    ]
    assert whole[: len(foreign) + 17] + _text(_reply(continued)) == whole


def test_foreign_prefill_max_tokens_chain() -> None:
    foreign = CHINESE[:6]
    whole = foreign + _text(_reply([*QUESTION, {"role": "assistant", "content": foreign}]))
    got = foreign
    for _ in range(40):
        part = _reply([*QUESTION, {"role": "assistant", "content": got.rstrip()}], max_tokens=9)
        got = got.rstrip() + _text(part)
        if part.stop_reason == "end_turn":
            break
    assert got == whole


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
    fragments = reply.blocks[1].deltas
    assert fragments[0] == ("", 0)
    assert all(2 <= n <= 5 for _, n in fragments[1:-1])
    assert reply.blocks[1].tokens == text_tokens(reply.blocks[1].text)
    assert reply.output_tokens == text_tokens(_text(reply)) + reply.blocks[1].tokens
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
    thinking = reply.blocks[0]
    assert thinking.tokens == text_tokens(thinking.text) >= 20
    assert all(1 <= n <= 4 for _, n in thinking.deltas)


async def test_json_text_matches_across_calls(client: anthropic.AsyncAnthropic) -> None:
    first = await client.messages.create(**body())
    second = await client.messages.create(**body())
    assert first.content == second.content
    assert first.id != second.id
    assert first.id.startswith("msg_01")


async def test_answer_tokens_header(sim: Sim) -> None:
    async with sim.client(default_headers={"x-sim-answer-tokens": "3000"}) as client:
        message = await client.messages.create(**body(max_tokens=5000))
    assert 3000 <= message.usage.output_tokens <= 3000 + LAST_WORD_MAX
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
