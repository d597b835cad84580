from __future__ import annotations

import pytest

from claude_proxy.replay import (
    InvalidEventId,
    format_event_id,
    new_stream_id,
    parse_last_event_id,
    with_event_id,
)
from claude_proxy.replay.ids import is_stream_id, stream_made_at


def test_stream_ids_are_random_and_recognisable() -> None:
    ids = {new_stream_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_stream_id(value) for value in ids)
    assert not is_stream_id("strm_../../etc")


def test_a_stream_id_says_when_it_was_made_to_the_millisecond() -> None:
    made = 1_796_330_000.123
    ids = [new_stream_id(made) for _ in range(3)]
    assert len(set(ids)) == 3 and all(is_stream_id(value) for value in ids)
    assert all(stream_made_at(value) == pytest.approx(made, abs=0.001) for value in ids)
    assert stream_made_at("strm_x") is None  # not a stream id: no time to tell


def test_an_event_id_round_trips() -> None:
    stream_id = new_stream_id()
    assert parse_last_event_id(format_event_id(stream_id, 42), stream_id) == 42
    assert with_event_id(stream_id, 3, b"event: ping\ndata: {}\n\n") == (
        f"id: {stream_id}:3\n".encode() + b"event: ping\ndata: {}\n\n"
    )


@pytest.mark.parametrize(("value", "seq"), [(None, 0), ("", 0), (" 7 ", 7), ("strm_a:0", 0)])
def test_missing_or_bare_ids_are_accepted(value: str | None, seq: int) -> None:
    assert parse_last_event_id(value, "strm_a") == seq


@pytest.mark.parametrize("value", ["strm_b:3", "strm_a:x", "strm_a:-1", "abc", "1" * 19])
def test_foreign_or_malformed_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidEventId):
        parse_last_event_id(value, "strm_a")
