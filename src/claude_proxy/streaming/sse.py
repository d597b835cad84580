"""Sans-I/O server-sent events: split a byte stream into events, and encode events.

The splitter never parses JSON: the relay's happy path only needs each event's
name and its raw bytes, which it forwards untouched. ``Event.json()`` parses the
data on demand, for the few events whose content matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Event", "EventSplitter", "encode_event"]


@dataclass(slots=True)
class Event:
    name: str
    raw: bytes  # the whole event, terminating blank line included

    @classmethod
    def encode(cls, name: str, payload: dict[str, Any]) -> Event:
        return cls(name, encode_event(name, payload))

    def json(self) -> dict[str, Any]:
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
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" in buffer:
            # CRLF line ends are valid SSE; normalising them keeps one separator to look for.
            buffer = buffer.replace(b"\r\n", b"\n")
        parts = buffer.split(b"\n\n")
        self._pending = parts.pop()
        return [Event(_name(part), part + b"\n\n") for part in parts if part.strip()]


def _name(raw: bytes) -> str:
    if raw.startswith(b"event:"):
        line_end = raw.find(b"\n")
        return raw[6:line_end].strip().decode("utf-8", "replace")
    position = raw.find(b"\nevent:")
    if position < 0:
        return ""  # a comment or an unnamed event
    line_end = raw.find(b"\n", position + 1)
    return raw[position + 7 : line_end].strip().decode("utf-8", "replace")
