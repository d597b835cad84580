"""The splicer on its own: parts fed in, one well-formed client message out."""

from __future__ import annotations

from typing import Any

import pytest

from claude_proxy.streaming.splice import Splicer
from claude_proxy.streaming.sse import Event


def ev(name: str, **payload: Any) -> Event:
    return Event.encode(name, {"type": name, **payload})


def start(input_tokens: int = 10) -> Event:
    usage = {"input_tokens": input_tokens, "output_tokens": 1}
    return ev("message_start", message={"id": "msg_1", "content": [], "usage": usage})


def block(index: int, kind: str = "text") -> Event:
    shell = {"type": kind, "text": ""} if kind == "text" else {"type": kind, "id": "t", "input": {}}
    return ev("content_block_start", index=index, content_block=shell)


def text(index: int, value: str) -> Event:
    return ev("content_block_delta", index=index, delta={"type": "text_delta", "text": value})


def stop(index: int) -> Event:
    return ev("content_block_stop", index=index)


def delta(reason: str, output_tokens: int, input_tokens: int = 99) -> Event:
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return ev("message_delta", delta={"stop_reason": reason, "stop_sequence": None}, usage=usage)


def feed(splicer: Splicer, *events: Event) -> list[Event]:
    out: list[Event] = []
    for event in events:
        splicer.on_event(event, out)
    return out


def names(events: list[Event]) -> list[str]:
    return [event.name for event in events]


def texts(events: list[Event]) -> str:
    return "".join(
        e.json()["delta"].get("text", "") for e in events if e.name == "content_block_delta"
    )


def test_a_single_part_passes_through_untouched() -> None:
    splicer = Splicer()
    events = [start(), block(0), text(0, "Hi"), stop(0), delta("end_turn", 3), ev("message_stop")]
    out = feed(splicer, *events)
    assert all(a is b for a, b in zip(out, events, strict=True))
    assert splicer.finished and splicer.usage == {"input_tokens": 99, "output_tokens": 3}


def test_a_heal_merges_into_the_open_block_and_counts_both_parts() -> None:
    splicer = Splicer()
    first = feed(splicer, start(), block(0), text(0, "Hello wor"))
    assert splicer.part_text() == "Hello wor"
    splicer.end_part(4, new_segment=False)  # the broken part's (estimated) cost
    splicer.begin_part(" wor", via_continue_turn=False)  # prefill "Hello", client has " wor"
    second = feed(
        splicer,
        start(input_tokens=50),  # the continuation's own prompt: not the client's
        block(0),
        text(0, " world"),
        text(0, ", friend."),
        stop(0),
        delta("end_turn", 5, input_tokens=50),
        ev("message_stop"),
    )
    client = first + second
    assert names(client) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert texts(client) == "Hello world, friend."
    assert client[-2].json()["usage"] == {"input_tokens": 10, "output_tokens": 4 + 5}
    assert splicer.segment_tokens == 4


def test_a_part_that_starts_with_another_kind_of_block_closes_the_open_one() -> None:
    splicer = Splicer()
    feed(splicer, start(), block(0), text(0, "Let me look."))
    splicer.end_part(4, new_segment=False)
    splicer.begin_part("", via_continue_turn=False)
    out = feed(splicer, start(), block(0, "tool_use"), stop(0), delta("tool_use", 7))
    assert names(out) == [
        "content_block_stop",
        "content_block_start",
        "content_block_stop",
        "message_delta",
    ]
    assert [e.json()["index"] for e in out[:3]] == [0, 1, 1]
    assert splicer.blocker() == "a tool_use block was in progress"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("The bridge holds. Then", " Then rain"),  # repeats its last sentence first
        ("Then", " Then rain"),  # starts a new word without its space
    ],
)
def test_a_continue_turn_drops_what_it_repeats_and_restores_a_lost_space(
    reply: str, expected: str
) -> None:
    splicer = Splicer()
    feed(splicer, start(), block(0), text(0, "The river runs. The bridge holds."))
    splicer.end_part(9, new_segment=False)
    splicer.begin_part("", via_continue_turn=True)
    out = feed(splicer, start(), block(0), text(0, reply), text(0, " rain"), stop(0))
    assert texts(out) == expected


def test_a_max_tokens_stop_is_held_then_continued_in_the_same_block() -> None:
    splicer = Splicer()
    splicer.may_continue = True
    out = feed(splicer, start(), block(0), text(0, "One two"), stop(0), delta("max_tokens", 2))
    out += feed(splicer, ev("message_stop"))
    assert names(out) == ["message_start", "content_block_start", "content_block_delta"]
    assert splicer.truncated and splicer.part_ended and not splicer.finished
    splicer.end_part(splicer.part_reported_tokens, new_segment=True)
    splicer.begin_part("", via_continue_turn=False)
    splicer.may_continue = False
    out += feed(splicer, start(), block(0), text(0, " three."), stop(0), delta("end_turn", 2))
    out += feed(splicer, ev("message_stop"))
    assert names(out)[3:] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert texts(out) == "One two three."
    assert out[-2].json()["delta"]["stop_reason"] == "end_turn"
    assert out[-2].json()["usage"]["output_tokens"] == 4
    assert splicer.segment_tokens == 0  # a continuation starts a fresh max_tokens


def test_a_held_end_is_released_when_the_answer_is_not_continued() -> None:
    splicer = Splicer()
    splicer.may_continue = True
    feed(splicer, start(), block(0), text(0, "Cut"), stop(0), delta("max_tokens", 1))
    feed(splicer, ev("message_stop"))
    out = splicer.finish_held()
    assert names(out) == ["content_block_stop", "message_delta", "message_stop"]
    assert out[1].json()["usage"]["output_tokens"] == 1
    assert out[1].json()["delta"]["stop_reason"] == "max_tokens"


def test_a_held_block_stop_goes_out_before_the_next_block() -> None:
    splicer = Splicer()
    splicer.may_continue = True
    out = feed(splicer, start(), block(0), text(0, "a"), stop(0), block(1, "tool_use"))
    assert names(out)[-2:] == ["content_block_stop", "content_block_start"]
    assert splicer.release_stop() == []


def test_ending_at_max_tokens_closes_the_open_block_with_the_counted_usage() -> None:
    splicer = Splicer()
    feed(splicer, start(), block(0), text(0, "Long"))
    splicer.end_part(5, new_segment=False)
    out = splicer.end_at_max_tokens()
    assert names(out) == ["content_block_stop", "message_delta", "message_stop"]
    assert out[1].json()["usage"]["output_tokens"] == 5
    assert splicer.finished


def test_a_retry_before_anything_reached_the_client_starts_the_message_there() -> None:
    splicer = Splicer()
    splicer.begin_part("", via_continue_turn=False)
    out = feed(splicer, start(), block(0), text(0, "Hi"))
    assert names(out) == ["message_start", "content_block_start", "content_block_delta"]
