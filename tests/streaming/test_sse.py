from __future__ import annotations

import random

from claude_proxy.streaming.sse import EventSplitter, encode_event, singles

STREAM = (
    encode_event("message_start", {"type": "message_start", "message": {"id": "m"}})
    + b": keep-alive comment\n\n"
    + encode_event("content_block_delta", {"type": "content_block_delta", "delta": {"text": "é\n"}})
    + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def names(splitter: EventSplitter, chunks: list[bytes]) -> list[str]:
    return [event.name for chunk in chunks for event in splitter.feed(chunk)]


def test_events_split_the_same_whatever_the_chunking() -> None:
    whole = names(EventSplitter(), [STREAM])
    assert whole == ["message_start", "", "content_block_delta", "message_stop"]
    for size in (1, 2, 3, 7, 64):
        chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
        assert names(EventSplitter(), chunks) == whole


def test_a_torn_event_waits_for_its_end() -> None:
    splitter = EventSplitter()
    cut = STREAM.index(b"event: content_block_delta") + 10
    first = splitter.feed(STREAM[:cut])
    assert [e.name for e in first] == ["message_start", ""]
    assert splitter.pending == STREAM[len(b"".join(e.raw for e in first)) : cut]
    rest = splitter.feed(STREAM[cut:])
    assert rest[0].json()["delta"]["text"] == "é\n"


def test_an_event_alone_in_its_chunk_passes_as_it_came_and_blank_lines_pass_not_at_all() -> None:
    delta = encode_event("content_block_delta", {"type": "content_block_delta", "index": 0})
    splitter = EventSplitter()
    (event,) = splitter.feed_runs(delta)
    assert (event.name, event.raw, event.count) == ("content_block_delta", delta, 1)
    assert splitter.feed_runs(b"\n\n") == splitter.feed_runs(b" \r\n\r\n") == []
    assert splitter.feed_runs(b"\n\n \n\n") == []  # several blank "events" in one chunk
    assert splitter.feed_runs(b": ping\n\n")[0].name == ""
    assert splitter.pending == b""


def test_crlf_line_ends_and_multiline_data() -> None:
    raw = b'event: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    (event,) = EventSplitter().feed(raw)
    assert event.name == "x"
    assert event.json() == {"a": 1}


# -- runs: consecutive deltas as one Event, found without a Python step per event ----------


def _delta(text: str, index: int = 0, kind: str = "text_delta") -> bytes:
    field = "partial_json" if kind == "input_json_delta" else "text"
    payload = {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: text}}
    return encode_event("content_block_delta", payload)


def _random_stream(rng: random.Random) -> bytes:
    """A message as the API streams it, with what may sit between deltas: pings, block
    changes (text, tool input), a comment, an error at the end; sometimes CRLF."""
    out = [encode_event("message_start", {"type": "message_start", "message": {"id": "m"}})]
    for index in range(rng.randint(1, 3)):
        kind = rng.choice(["text_delta", "input_json_delta"])
        out.append(encode_event("content_block_start", {"type": "content_block_start"}))
        for _ in range(rng.randint(0, 40)):
            roll = rng.random()
            if roll < 0.05:
                out.append(encode_event("ping", {"type": "ping"}))
            elif roll < 0.07:
                out.append(b": comment\n\n")
            elif roll < 0.09:  # a delta in another form than the API's: two data lines
                out.append(
                    b'event: content_block_delta\ndata: {"type":"content_block_delta",\n'
                    b'data: "index":0,"delta":{"type":"text_delta","text":"x"}}\n\n'
                )
            else:
                out.append(_delta(rng.choice(["a", "é\n", "}", "\n\n", " word"]), index, kind))
        out.append(encode_event("content_block_stop", {"type": "content_block_stop"}))
    if rng.random() < 0.2:
        out.append(encode_event("error", {"type": "error", "error": {"type": "overloaded_error"}}))
    else:
        out.append(encode_event("message_stop", {"type": "message_stop"}))
    stream = b"".join(out)
    return stream.replace(b"\n", b"\r\n") if rng.random() < 0.1 else stream


def test_runs_hold_the_same_events_as_one_by_one_whatever_the_chunking() -> None:
    rng = random.Random(11)
    runs_seen = 0
    for _ in range(300):
        stream = _random_stream(rng)
        expected = [(e.name, e.raw) for e in EventSplitter().feed(stream)]
        size = rng.choice([1, 7, 100, 1000, 8192, len(stream)])
        splitter = EventSplitter()
        got = []
        for start in range(0, len(stream), size):
            for event in splitter.feed_runs(stream[start : start + size]):
                if event.count > 1:
                    runs_seen += 1
                    # A run holds deltas only, each whole and in the API's one-line form.
                    assert all(e.json()["type"] == "content_block_delta" for e in event.each())
                    assert event.raw == b"".join(e.raw for e in event.each())
                got += [(e.name, e.raw) for e in event.each()]
        assert got == expected
        assert splitter.pending == b""
    assert runs_seen > 100  # the property is not vacuous


def test_a_burst_of_deltas_is_one_run_between_the_events_around_it() -> None:
    body = (
        encode_event("message_start", {"type": "message_start", "message": {"id": "m"}})
        + b"".join(_delta(f"w{i} ") for i in range(500))
        + encode_event("message_stop", {"type": "message_stop"})
    )
    events = EventSplitter().feed_runs(body)
    assert [(e.name, e.count) for e in events] == [
        ("message_start", 1),
        ("content_block_delta", 500),
        ("message_stop", 1),
    ]
    assert singles(events) == EventSplitter().feed(body)


def test_anything_else_between_deltas_breaks_the_run() -> None:
    for between in (
        encode_event("ping", {"type": "ping"}),
        encode_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        b": comment\n\n",
        b"\n",  # a stray blank line: "\n\n\n"
    ):
        body = _delta("a") + _delta("b") + between + _delta("c") + _delta("d")
        events = EventSplitter().feed_runs(body)
        assert all(e.name == "content_block_delta" for e in events if e.count > 1)
        names = [e.name for e in singles(events)]
        assert names == [e.name for e in EventSplitter().feed(body)]
