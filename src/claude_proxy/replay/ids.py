"""Stream ids and SSE event ids: ``strm_<time><random>`` and ``<stream_id>:<seq>``.

Every SSE event of a resumable stream carries ``id: <stream_id>:<seq>`` (``seq`` counts
from 1). A client sends the last id it saw back verbatim as ``Last-Event-ID``; a bare
``<seq>`` is accepted too. Carrying the stream id lets the gateway refuse an id that
belongs to another stream instead of silently replaying the wrong events.

A stream id begins with the time it was made (milliseconds since the epoch, base62, 7
characters), so that a replica asked for a stream whose keys have not reached the shared
log yet can tell a young stream (worth waiting for a moment) from an unknown one.
"""

from __future__ import annotations

import secrets
import string
import time

__all__ = [
    "STREAM_ID_HEADER",
    "InvalidEventId",
    "format_event_id",
    "is_stream_id",
    "new_stream_id",
    "parse_last_event_id",
    "stream_made_at",
    "with_event_id",
]

STREAM_ID_HEADER = "x-proxy-stream-id"
_PREFIX = "strm_"
_ALPHANUMERIC = str.maketrans({"-": "x", "_": "Z"})
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_TIME_CHARS = 7  # 62**7 ms: until the year 2081


class InvalidEventId(ValueError):
    """A ``Last-Event-ID`` that is not ``<stream_id>:<seq>`` (or ``<seq>``) of this stream."""


def new_stream_id(now: float | None = None) -> str:
    """``strm_``, the time (7 characters), and 17 random alphanumeric ones (about 100 bits)."""
    ms = int((time.time() if now is None else now) * 1000)
    stamp = []
    for _ in range(_TIME_CHARS):
        ms, digit = divmod(ms, 62)
        stamp.append(_BASE62[digit])
    random = secrets.token_urlsafe(18)[:17].translate(_ALPHANUMERIC)
    return _PREFIX + "".join(reversed(stamp)) + random


def stream_made_at(stream_id: str) -> float | None:
    """When the stream was made (epoch seconds, by its replica's clock); None for an id
    that is not a stream id. Ids made before the time was in them give some random time."""
    if not is_stream_id(stream_id):
        return None
    ms = 0
    for char in stream_id[len(_PREFIX) : len(_PREFIX) + _TIME_CHARS]:
        ms = ms * 62 + _BASE62.index(char)
    return ms / 1000


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
