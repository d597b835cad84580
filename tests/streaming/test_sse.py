from __future__ import annotations

from claude_proxy.streaming.sse import EventSplitter, encode_event

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


def test_crlf_line_ends_and_multiline_data() -> None:
    raw = b'event: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    (event,) = EventSplitter().feed(raw)
    assert event.name == "x"
    assert event.json() == {"a": 1}
