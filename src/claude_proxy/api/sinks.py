"""Where a live client receives a stream: an SSE response, or a request on a WebSocket.

On a WebSocket each event is a ``{"id": …, "event": …}`` text frame whose event object
is the ``data:`` JSON of the SSE event, byte for byte, so a WebSocket client gets
exactly what an SSE client would, without the gateway parsing and re-encoding each event.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import WSMsgType, web

from claude_proxy.streaming.generation import ClientGone
from claude_proxy.streaming.sse import Event

__all__ = ["SseSink", "WsSink", "control_frame", "event_frame", "sse_data"]

_DATA = b"\ndata: "
_END = b"\n\n"  # ends each event
# "<seq>\n" for the sequence numbers of most answers' events: formatting a number costs
# more than the rest of relaying the event does (0.4 MB, made once at import).
_SEQ_LINES = tuple([b"%d\n" % seq for seq in range(8192)])


def _seq_line(seq: int) -> bytes:
    return _SEQ_LINES[seq] if seq < len(_SEQ_LINES) else b"%d\n" % seq


def sse_data(event: bytes) -> bytes:
    """The JSON of an SSE event's ``data:`` line (events in the API's one-line form)."""
    start = event.find(_DATA)
    if start >= 0 and event.find(_DATA, start + 7) < 0 and b"\r" not in event:
        return event[start + 7 : event.index(b"\n", start + 7)]
    return orjson.dumps(Event("", event).json())  # several data lines: join them properly


def event_frame(client_id: bytes, event: bytes) -> bytes:
    """``client_id``: the request's ``id`` as JSON bytes (it is echoed untouched)."""
    return b'{"id":' + client_id + b',"event":' + sse_data(event) + b"}"


def control_frame(client_id: bytes, frame_type: str, **fields: Any) -> bytes:
    return (
        b'{"id":'
        + client_id
        + b',"type":'
        + orjson.dumps(frame_type)
        + (b"," + orjson.dumps(fields)[1:] if fields else b"}")
    )


class WsSink:
    """The events of one request on a socket that may carry several at once."""

    __slots__ = ("_client_id", "_ws")

    def __init__(self, ws: web.WebSocketResponse, client_id: bytes) -> None:
        self._ws = ws
        self._client_id = client_id

    async def send(self, events: list[tuple[int, Event]]) -> None:
        ws = self._ws
        for _, run in events:
            for event in run.each():
                if ws.closed:
                    raise ClientGone()
                try:
                    await ws.send_frame(event_frame(self._client_id, event.raw), WSMsgType.TEXT)
                except ConnectionResetError as exc:
                    raise ClientGone() from exc

    async def close(self, error_type: str | None) -> None:
        """The request's last event (``message_stop`` or ``error``) was its end: nothing to do."""


class SseSink:
    """Events to an SSE response, each with ``id: <stream_id>:<seq>`` when resumable."""

    __slots__ = ("_id_prefix", "_response", "_separator")

    def __init__(self, response: web.StreamResponse, stream_id: str | None) -> None:
        self._response = response
        self._id_prefix = None if stream_id is None else b"id: " + stream_id.encode() + b":"
        # What goes between two events of a run: the end of one, the id line of the next.
        self._separator = _END + (self._id_prefix or b"")

    async def send(self, events: list[tuple[int, Event]]) -> None:
        prefix = self._id_prefix
        if prefix is None:
            data = b"".join([event.raw for _, event in events])
        else:
            pieces: list[bytes] = []
            for seq, event in events:
                if event.count == 1:
                    pieces += (prefix, _seq_line(seq), event.raw)
                else:
                    pieces += self._run(seq, event)
            data = b"".join(pieces)
        try:
            await self._response.write(data)
        except ConnectionResetError as exc:
            raise ClientGone() from exc

    def _run(self, seq: int, run: Event) -> list[bytes]:
        """A run's events, each after its id line, with no Python step per event: the
        pieces are laid out by slice assignment, the numbers taken from a table."""
        count = run.count
        end = seq + count
        pieces = [self._separator] * (3 * count)
        if end <= len(_SEQ_LINES):
            pieces[0::3] = _SEQ_LINES[seq:end]
        else:
            pieces[0::3] = map(b"%d\n".__mod__, range(seq, end))
        pieces[1::3] = run.split()
        pieces[-1] = _END
        pieces[0] = self._id_prefix + pieces[0]  # type: ignore[operator]  # set when resumable
        return pieces

    async def close(self, error_type: str | None) -> None:
        try:
            await self._response.write_eof()
        except ConnectionResetError as exc:
            raise ClientGone() from exc
