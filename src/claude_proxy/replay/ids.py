"""Stream ids and SSE event ids: ``strm_<random>`` and ``<stream_id>:<seq>``.

Every SSE event of a resumable stream carries ``id: <stream_id>:<seq>`` (``seq`` counts
from 1). A client sends the last id it saw back verbatim as ``Last-Event-ID``; a bare
``<seq>`` is accepted too. Carrying the stream id lets the gateway refuse an id that
belongs to another stream instead of silently replaying the wrong events.
"""

from __future__ import annotations

import secrets

__all__ = [
    "STREAM_ID_HEADER",
    "InvalidEventId",
    "format_event_id",
    "is_stream_id",
    "new_stream_id",
    "parse_last_event_id",
    "with_event_id",
]

STREAM_ID_HEADER = "x-proxy-stream-id"
_PREFIX = "strm_"
_ALPHANUMERIC = str.maketrans({"-": "x", "_": "Z"})


class InvalidEventId(ValueError):
    """A ``Last-Event-ID`` that is not ``<stream_id>:<seq>`` (or ``<seq>``) of this stream."""


def new_stream_id() -> str:
    """``strm_`` and 24 random alphanumeric characters (about 143 bits)."""
    return _PREFIX + secrets.token_urlsafe(24)[:24].translate(_ALPHANUMERIC)


def is_stream_id(value: str) -> bool:
    return value.startswith(_PREFIX) and len(value) == 29 and value[5:].isalnum()


def format_event_id(stream_id: str, seq: int) -> str:
    return f"{stream_id}:{seq}"


def with_event_id(stream_id: str, seq: int, data: bytes) -> bytes:
    """The event ``data`` (as stored in the log) with its ``id:`` line in front."""
    return b"id: " + f"{stream_id}:{seq}".encode() + b"\n" + data


def parse_last_event_id(value: str | None, stream_id: str) -> int:
    """The sequence number to resume after: 0 (from the start) when there is no id."""
    if value is None or not value.strip():
        return 0
    owner, _, seq = value.strip().rpartition(":")
    if owner and owner != stream_id:
        raise InvalidEventId("Last-Event-ID belongs to another stream.")
    if not seq.isdigit() or len(seq) > 18:
        raise InvalidEventId("Last-Event-ID must look like '<stream_id>:<number>'.")
    return int(seq)
