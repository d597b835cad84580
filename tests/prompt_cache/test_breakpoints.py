"""Where the plan puts breakpoints, for each shape of request, within the API's rules."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from claude_proxy.prompt_cache import plan
from claude_proxy.prompt_cache.breakpoints import PREVIOUS_TURN_GAP

from .bodies import IMAGE, body, conversation, markers, text

MIN = 1024
FIVE = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


def tool(name: str, tokens: int = 40, **fields: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    return {"name": name, "description": text(tokens, name), "input_schema": schema, **fields}


@dataclass
class Planned:
    outcome: str
    added: list[str]  # where each breakpoint went
    sent: dict[str, Any]  # the body that goes upstream


def planned(request: dict[str, Any], ttl: str = "5m") -> Planned:
    original = copy.deepcopy(request)
    result = plan(request, ttl=ttl, min_tokens=MIN)  # type: ignore[arg-type]
    assert request == original, "the plan never changes the body it is given"
    return Planned(result.outcome, [p.where for p in result.added], result.body or request)


def left_alone(request: dict[str, Any], ttl: str = "5m") -> str:
    """Why ``request`` got no breakpoint (it goes upstream as it came)."""
    result = planned(request, ttl)
    assert result.added == [] and result.sent is request
    return result.outcome


def test_a_short_request_gets_nothing() -> None:
    assert left_alone(body([{"role": "user", "content": "Hello"}])) == "short"


def test_a_conversation_is_marked_at_its_end() -> None:
    request = body(conversation(12), system="Be brief.")
    result = planned(request)
    assert (result.outcome, result.added) == ("added", ["messages"])
    last = result.sent["messages"][-1]["content"]
    assert last == [{"type": "text", "text": "Question 12: what next?", "cache_control": FIVE}]
    # Nothing else changed; the rest of the body is the same objects.
    assert result.sent["messages"][:-1] == request["messages"][:-1]
    kept = zip(result.sent["messages"][:-1], request["messages"], strict=False)
    assert all(sent is given for sent, given in kept)
    assert result.sent["system"] == "Be brief."  # too short to be worth a breakpoint of its own


def test_tools_system_and_conversation_each_get_one() -> None:
    tools = [tool("search"), tool("fetch", 700)]
    system = [{"type": "text", "text": "You are a librarian."},
              {"type": "text", "text": text(600)}]  # fmt: skip
    request = body(conversation(3), tools=tools, system=system)
    result = planned(request)
    assert (result.outcome, result.added) == ("added", ["tools", "system", "messages"])
    assert result.sent["tools"][0] == tools[0] and result.sent["tools"][1]["cache_control"] == FIVE
    assert "cache_control" not in result.sent["system"][0]
    assert result.sent["system"][1] == {**system[1], "cache_control": FIVE}
    assert len(markers(result.sent)) == 3


def test_a_string_system_becomes_one_marked_block() -> None:
    system = text(1500)
    result = planned(body([{"role": "user", "content": "Hi"}], system=system))
    assert result.added == ["system", "messages"]
    assert result.sent["system"] == [{"type": "text", "text": system, "cache_control": FIVE}]


def test_a_document_before_its_question_is_marked_too() -> None:
    """The next question about the same document reads it back."""
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                               "data": text(3000)}}  # fmt: skip
    question = {"type": "text", "text": "Who wrote it?"}
    request = body([{"role": "user", "content": [document, question]}])
    result = planned(request)
    assert result.added == ["messages", "messages"]
    blocks = result.sent["messages"][0]["content"]
    assert [block.get("cache_control") for block in blocks] == [FIVE, FIVE]


def test_a_previous_turn_out_of_look_back_is_marked() -> None:
    """A turn of many tool calls puts the previous request's end more than the API's
    look-back before the new end: a breakpoint there reads what that request wrote."""
    calls = PREVIOUS_TURN_GAP // 2 + 1
    uses = [{"type": "tool_use", "id": f"toolu_{i}", "name": "search", "input": {"q": str(i)}}
            for i in range(calls)]  # fmt: skip
    results = [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": text(30)}
               for i in range(calls)]  # fmt: skip
    before = [{"role": "user", "content": text(1200)}]
    first = planned(body(before)).sent
    request = body([*before, {"role": "assistant", "content": uses},
                    {"role": "user", "content": results}])  # fmt: skip
    result = planned(request)
    assert result.added == ["messages", "messages", "messages"]  # previous end, context, end
    # The previous turn's breakpoint is exactly where the previous request put its end.
    assert result.sent["messages"][0] == first["messages"][0]
    assert result.sent["messages"][2]["content"][-1]["cache_control"] == FIVE
    assert result.sent["messages"][2]["content"][-2]["cache_control"] == FIVE


def test_a_near_previous_turn_is_left_to_the_look_back() -> None:
    request = body(conversation(15, words=100))
    result = planned(request)
    assert result.added == ["messages"]


def test_never_on_thinking_empty_or_server_blocks() -> None:
    thinking = {"type": "thinking", "thinking": "Hmm.", "signature": "sig"}
    redacted = {"type": "redacted_thinking", "data": "abc"}
    server = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    prefill = [{"type": "text", "text": text(1500)}, thinking, redacted, server]
    request = body([{"role": "user", "content": "Go on"},
                    {"role": "assistant", "content": prefill}])  # fmt: skip
    result = planned(request)
    blocks = result.sent["messages"][1]["content"]
    assert blocks[0]["cache_control"] == FIVE
    assert all("cache_control" not in block for block in blocks[1:])


def test_the_clients_own_are_kept_and_never_doubled() -> None:
    system = [{"type": "text", "text": text(1500), "cache_control": FIVE}]
    request = body(conversation(2), system=system)
    result = planned(request)
    assert result.added == ["messages"]  # not on the system block again
    assert result.sent["system"] is request["system"]
    # The client marked the end itself: nothing to add.
    messages = conversation(2)
    messages[-1]["content"] = [{"type": "text", "text": text(1500), "cache_control": HOUR}]
    assert left_alone(body(messages)) == "covered"


def test_never_more_than_four() -> None:
    tools = [tool("a", 1100, cache_control=FIVE), tool("b", 10)]
    system = [{"type": "text", "text": text(100), "cache_control": FIVE}]
    image = {**IMAGE, "cache_control": FIVE}
    messages = [{"role": "user", "content": [image, {"type": "text", "text": "Describe it."}]}]
    request = body(messages, tools=tools, system=system)
    result = planned(request)
    assert len(markers(result.sent)) == 4 and len(result.added) == 1
    assert result.added == ["messages"]  # the end first
    full = body([{"role": "user", "content": [{**IMAGE, "cache_control": FIVE}] * 4}])
    assert left_alone(full) == "full"


def test_one_hour_breakpoints_stay_before_five_minute_ones() -> None:
    """Before a client's 1h breakpoint ours are 1h (its write covers them anyway); after a
    client's 5m one ours are 5m, whatever the configured TTL."""
    tools = [tool("lookup", 1100)]
    hour_system = [{"type": "text", "text": text(200), "cache_control": HOUR}]
    request = body(conversation(2), tools=tools, system=hour_system)
    result = planned(request, ttl="5m")
    assert result.sent["tools"][0]["cache_control"] == HOUR
    assert result.sent["messages"][-1]["content"][0]["cache_control"] == FIVE
    five_system = [{"type": "text", "text": text(200), "cache_control": FIVE}]
    result = planned(body(conversation(2), tools=tools, system=five_system), "1h")
    assert result.sent["tools"][0]["cache_control"] == HOUR
    assert result.sent["messages"][-1]["content"][0]["cache_control"] == FIVE
    result = planned(body(conversation(2), tools=tools), "1h")
    assert [m.get("ttl") for m in markers(result.sent)] == ["1h", "1h"]


def test_a_tool_results_own_blocks_count_as_the_clients() -> None:
    inner = {"type": "text", "text": text(1500), "cache_control": HOUR}
    uses = [{"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}]
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [inner]}
    request = body([{"role": "user", "content": "Read it"}, {"role": "assistant", "content": uses},
                    {"role": "user", "content": [result]}])  # fmt: skip
    assert left_alone(request) == "covered"


@pytest.mark.parametrize(
    "request_body",
    [
        body(conversation(3, words=400), cache_control=FIVE),  # automatic caching
    ],
)
def test_automatic_caching_is_left_alone(request_body: dict[str, Any]) -> None:
    assert left_alone(request_body) == "automatic"


@pytest.mark.parametrize(
    "system",
    [
        [{"type": "text", "text": "a", "cache_control": FIVE},
         {"type": "text", "text": "b", "cache_control": HOUR}],  # 1h after 5m
        [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "1d"}}],
    ],
)  # fmt: skip
def test_breakpoints_the_api_refuses_are_left_for_it_to_say(system: list[Any]) -> None:
    request = body(conversation(3, words=500), system=system)
    assert left_alone(request) == "invalid"


def test_shapes_the_api_refuses_are_left_alone() -> None:
    assert left_alone(body("not a list")) == "invalid"  # type: ignore[arg-type]
    assert left_alone(body([{"role": "user", "content": 7}])) == "invalid"
