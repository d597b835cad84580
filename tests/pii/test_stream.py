"""Pseudonyms restored in streamed answers, however the placeholder is cut."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from claude_proxy.pii import PiiSettings, Policy, Redaction, StreamRestorer
from claude_proxy.streaming.sse import Event

EMAIL = "zhang.wei@example.com"
CARD = "4111 1111 1111 1111"


def redaction(**settings: Any) -> Redaction:
    r = Redaction(Policy(PiiSettings(mode="pseudonymize", **settings)))
    assert r.text(f"mail {EMAIL}, card {CARD}") == "mail <EMAIL_1>, card <CREDIT_CARD_1>"
    return r


def delta(text: str, index: int = 0, kind: str = "text_delta") -> Event:
    field = "text" if kind == "text_delta" else "partial_json"
    payload = {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: text}}
    return Event.encode("content_block_delta", payload)


def stop(index: int = 0) -> Event:
    return Event.encode("content_block_stop", {"type": "content_block_stop", "index": index})


def texts(events: list[Event]) -> list[str]:
    out = []
    for event in events:
        if event.name == "content_block_delta":
            d = event.json()["delta"]
            out.append(d.get("text", d.get("partial_json")))
    return out


UPSTREAM = "Sent to <EMAIL_1> and charged <CREDIT_CARD_1>; <NOT_MINE_3> stays, a < b too."
CLIENT = f"Sent to {EMAIL} and charged {CARD}; <NOT_MINE_3> stays, a < b too."


@pytest.mark.parametrize("cut", range(len(UPSTREAM) + 1))
def test_a_placeholder_cut_anywhere_across_two_deltas_is_restored(cut: int) -> None:
    restorer = StreamRestorer(redaction())
    first = restorer.on_events([delta(UPSTREAM[:cut])])
    second = restorer.on_events([delta(UPSTREAM[cut:]), stop()])
    assert "".join(texts(first) + texts(second)) == CLIENT
    # At most one event late: whatever the first delta completed went out with it.
    sent_first = "".join(texts(first))
    assert CLIENT.startswith(sent_first)
    assert second[-1].name == "content_block_stop"
    assert not any("<EMAIL" in t or "<CREDIT" in t for t in texts(first) + texts(second))


def test_one_character_per_delta() -> None:
    restorer = StreamRestorer(redaction())
    out = []
    for char in UPSTREAM:
        out += restorer.on_events([delta(char)])
    out += restorer.on_events([stop()])
    assert "".join(texts(out)) == CLIENT


def test_held_text_goes_out_when_the_answer_ends_early() -> None:
    restorer = StreamRestorer(redaction())
    sent = restorer.on_events([delta("Reply to <EMAIL_")])
    assert "".join(texts(sent)) == "Reply to "
    assert "".join(texts(restorer.flush())) == "<EMAIL_"  # never a half value, never lost


def test_tool_input_json_gets_values_json_escaped() -> None:
    r = Redaction(
        Policy(
            PiiSettings(mode="pseudonymize", custom=[{"name": "QUOTED", "pattern": r'Q"[a-z]+"'}])
        )
    )
    assert r.text('id Q"abc"') == "id <QUOTED_1>"
    restorer = StreamRestorer(r)
    out = restorer.on_events(
        [
            delta('{"who": "<QUO', 1, "input_json_delta"),
            delta('TED_1>"}', 1, "input_json_delta"),
            stop(1),
        ]
    )
    assert orjson.loads("".join(texts(out))) == {"who": 'Q"abc"'}


def test_blocks_are_held_separately() -> None:
    restorer = StreamRestorer(redaction())
    out = restorer.on_events([delta("a <EMA", 0), delta("b <CREDIT_", 1), delta("IL_1>", 0)])
    out += restorer.on_events([delta("CARD_1>", 1), stop(0), stop(1)])
    by_index: dict[int, str] = {}
    for event in out:
        if event.name == "content_block_delta":
            data = event.json()
            by_index[data["index"]] = by_index.get(data["index"], "") + data["delta"]["text"]
    assert by_index == {0: f"a {EMAIL}", 1: f"b {CARD}"}


def test_scan_responses_masks_a_value_streamed_in_pieces() -> None:
    r = Redaction(Policy(PiiSettings(mode="mask", scan_responses=True)))
    restorer = StreamRestorer(r)
    pieces = [
        "Your card ",
        "4111 11",
        "11 1111 ",
        "1111 is on",
        " file; mail ",
        "bob@exa",
        "mple.com.",
    ]
    out = []
    for piece in pieces:
        out += restorer.on_events([delta(piece)])
    out += restorer.on_events([stop()])
    assert "".join(texts(out)) == "Your card [CREDIT_CARD] is on file; mail [EMAIL]."
    assert r.masked_in_answer == {"CREDIT_CARD": 1, "EMAIL": 1}


def test_held_text_goes_out_before_an_error_event_ends_the_answer() -> None:
    restorer = StreamRestorer(redaction())
    error = Event.encode(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}
    )
    out = restorer.on_events([delta("Reply to <EMA"), delta("IL_1> and then <EM"), error])
    assert "".join(texts(out)) == f"Reply to {EMAIL} and then <EM"
    assert out[-1].name == "error"


def test_masked_tool_input_stays_valid_json() -> None:
    r = Redaction(Policy(PiiSettings(mode="mask", scan_responses=True)))
    restorer = StreamRestorer(r)
    pieces = ['{"to": "line1\\nbob@exam', 'ple.com", "card": "x\\n4111 1111', ' 1111 1111"}']
    out: list[Event] = []
    for piece in pieces:
        out += restorer.on_events([delta(piece, 1, "input_json_delta")])
    out += restorer.on_events([stop(1)])
    assert orjson.loads("".join(texts(out))) == {"to": "line1\n[EMAIL]", "card": "x\n[CREDIT_CARD]"}
