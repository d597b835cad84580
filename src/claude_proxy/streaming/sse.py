"""Sans-I/O server-sent events: split a byte stream into events, and encode events.

The splitter never parses JSON: the relay's happy path only needs each event's
name and its raw bytes, which it forwards untouched. ``Event.json()`` parses the
data on demand, for the few events whose content matters.

``EventSplitter.feed_runs`` goes one step further for the relay: consecutive
``content_block_delta`` events (almost all of a long answer) come back as one *run*,
an ``Event`` whose ``raw`` holds them all and whose ``count`` says how many. Found with
a few searches over the chunk, a run costs no Python work per event: a 500-event answer
is a handful of objects, not 500. ``Event.each()`` splits a run where each event matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Event", "EventSplitter", "encode_event", "run_events", "singles"]

_DELTA = "content_block_delta"
_END = b"\n\n"
_DELTA_HEAD = b"event: content_block_delta\ndata: "
_NEXT_DELTA = _END + _DELTA_HEAD
_BETWEEN_DELTAS = b"}" + _NEXT_DELTA


@dataclass(slots=True)
class Event:
    name: str
    raw: bytes  # the whole event, terminating blank line included (of each, in a run)
    # How many events ``raw`` holds: more than one for a run of content_block_delta
    # events, each ending with its blank line and none holding another (see feed_runs).
    count: int = 1
    # A run's events without their blank lines, when the splitter has them already.
    parts: list[bytes] | None = None

    def each(self) -> list[Event]:
        """The events of a run one by one (a single event: itself)."""
        if self.count == 1:
            return [self]
        return [Event(self.name, part + _END) for part in self.split()]

    def split(self) -> list[bytes]:
        """The events of a run without their blank lines."""
        return self.parts if self.parts is not None else _run_parts(self.raw)

    @classmethod
    def encode(cls, name: str, payload: dict[str, Any]) -> Event:
        return cls(name, encode_event(name, payload))

    def json(self) -> dict[str, Any]:
        """The data of a single event (not of a run: ``each()`` first)."""
        raw = self.raw
        start = raw.find(b"\ndata: ")
        # The API's events have exactly one "data: " line: slice it out without splitting.
        if start >= 0 and b"\r" not in raw and raw.find(b"\ndata:", start + 7) < 0:
            data = raw[start + 7 : raw.find(b"\n", start + 7)]
        else:
            data = b"".join(
                line[5:].lstrip(b" ")
                for line in raw.replace(b"\r\n", b"\n").split(b"\n")
                if line.startswith(b"data:")
            )
        value = orjson.loads(data) if data else {}
        return value if isinstance(value, dict) else {}


def run_events(raw: bytes) -> list[bytes]:
    """The events of a run's bytes (as a replay log keeps them), each with its blank line."""
    return [part + _END for part in _run_parts(raw)]


def _run_parts(raw: bytes) -> list[bytes]:
    parts = raw.split(_END)
    parts.pop()  # after the last blank line: nothing
    return parts


def singles(events: list[Event]) -> list[Event]:
    """``events`` with every run split into its events (the list itself if it has none)."""
    if all(event.count == 1 for event in events):
        return events
    return [single for event in events for single in event.each()]


def encode_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class EventSplitter:
    """Feed bytes as they arrive; get back the events completed by them."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    @property
    def pending(self) -> bytes:
        """Bytes of an event that has begun but not ended."""
        return self._pending

    def feed(self, chunk: bytes) -> list[Event]:
        """The events ``chunk`` completed, one ``Event`` each."""
        parts = self._buffer(chunk).split(_END)
        self._pending = parts.pop()
        return _events(parts)

    def feed_runs(self, chunk: bytes) -> list[Event]:
        """The events ``chunk`` completed, the deltas among them as one run where they
        follow each other (the events before and after it one ``Event`` each)."""
        buffer = self._buffer(chunk)
        cut = buffer.rfind(_END)
        if cut < 0:
            self._pending = buffer
            return []
        complete, self._pending = buffer[: cut + 2], buffer[cut + 2 :]
        if complete.find(_END) == cut:  # one event (paced deltas come so): no run to find
            return [] if complete.isspace() else [Event(_name(complete), complete)]
        first = complete.find(_DELTA_HEAD)
        if first < 0 or (first > 0 and not complete.startswith(_END, first - 2)):
            return _events(complete.split(_END)[:-1])
        last = complete.rfind(_NEXT_DELTA, first)
        end = complete.find(_END, first if last < 0 else last + 2) + 2
        middle = complete[first:end]
        parts = _run_parts(middle)
        # A run only if every event in it is a delta in the API's form: then each blank
        # line but the last ends a data line ("}") and is followed by a delta's name.
        # (Whole scans of the chunk cost more than anything else here: two, no more.)
        if len(parts) < 2 or middle.count(_BETWEEN_DELTAS) != len(parts) - 1:
            return _events(complete.split(_END)[:-1])
        events = _events(complete[:first].split(_END)[:-1]) if first else []
        events.append(Event(_DELTA, middle, len(parts), parts))
        if end < len(complete):
            events += _events(complete[end:].split(_END)[:-1])
        return events

    def _buffer(self, chunk: bytes) -> bytes:
        """What is pending, then ``chunk``."""
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" in buffer:
            # CRLF line ends are valid SSE; normalising them keeps one separator to look for.
            buffer = buffer.replace(b"\r\n", b"\n")
        return buffer


def _events(parts: list[bytes]) -> list[Event]:
    return [Event(_name(part), part + _END) for part in parts if part and not part.isspace()]


def _name(raw: bytes) -> str:
    if raw.startswith(b"event:"):
        line_end = raw.find(b"\n")
        return raw[6:line_end].strip().decode("utf-8", "replace")
    position = raw.find(b"\nevent:")
    if position < 0:
        return ""  # a comment or an unnamed event
    line_end = raw.find(b"\n", position + 1)
    return raw[position + 7 : line_end].strip().decode("utf-8", "replace")
