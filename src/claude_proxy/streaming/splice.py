"""Splice the events of several upstream attempts into one client stream.

The client sees one message: one ``message_start``, block indices that count up
without gaps, no repeated or missing text, one ``message_delta`` whose usage
covers the whole answer, one ``message_stop``.

The first attempt's events pass through untouched (only event names and block
starts/stops are looked at, to keep the happy path cheap). Text deltas are kept
as raw bytes and decoded only if a break makes the text so far necessary.
Events of a continuation attempt are rewritten: its ``message_start`` is
dropped, its first text block merges into the client's open one, indices are
shifted, and the text it repeats from what the client already has is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claude_proxy.streaming.continuation import count_words
from claude_proxy.streaming.sse import Event, encode_event

__all__ = ["Splicer"]

# A continue turn may repeat up to this much of the text before it carries on.
_OVERLAP_WINDOW = 400
_MIN_OVERLAP = 4


@dataclass(slots=True)
class _Block:
    kind: str
    closed: bool = False
    deltas: list[Event] = field(default_factory=list)

    def text(self) -> str:
        parts = []
        for event in self.deltas:
            delta = event.json().get("delta", {})
            if delta.get("type") == "text_delta":
                parts.append(str(delta.get("text", "")))
        return "".join(parts)


@dataclass(slots=True)
class _Attempt:
    """How the current continuation attempt maps onto the client's stream."""

    offset: int  # client index of the attempt's block 0 (when not merged)
    merge_first: bool
    merge_kind: str
    skip_prefix: str  # text the client already has, expected at the start
    buffer_overlap: bool  # continue turn: hold text until the overlap is known
    words_before: int
    pending_text: str = ""
    pending_index: int = 0
    trimmed: bool = False


class Splicer:
    def __init__(self) -> None:
        self.message_started = False
        self.finished = False
        self.stop_reason_sent = False
        self._blocks: list[_Block] = []
        self._start_usage: dict[str, Any] = {}
        self._final_usage: dict[str, Any] = {}
        self._attempt: _Attempt | None = None

    # -- what the client has ------------------------------------------------

    @property
    def content_sent(self) -> bool:
        return any(block.deltas for block in self._blocks)

    def blocker(self) -> str | None:
        """Why the answer so far cannot be continued, or None when it can."""
        for block in self._blocks:
            if block.kind != "text":
                return f"a {block.kind} block was in progress"
        return None

    @property
    def usage(self) -> dict[str, Any] | None:
        """The message's usage as the client saw it, once its message_delta arrived."""
        if not self.stop_reason_sent:
            return None
        return {**self._start_usage, **self._final_usage}

    def text_so_far(self) -> str:
        return "".join(block.text() for block in self._blocks)

    # -- switching attempts ---------------------------------------------------

    def begin_continuation(self, stripped_tail: str, via_continue_turn: bool) -> None:
        """The next events come from a new attempt continuing the text so far."""
        open_block = self._blocks[-1] if self._blocks and not self._blocks[-1].closed else None
        sent = self.text_so_far()
        # A continuation carries on in the client's open block when it is text, or
        # when nothing has been written into it yet (then it was a plain retry).
        mergeable = open_block is not None and (open_block.kind == "text" or not open_block.deltas)
        self._attempt = _Attempt(
            offset=len(self._blocks),
            merge_first=mergeable,
            merge_kind=open_block.kind if open_block is not None else "",
            skip_prefix=stripped_tail,
            buffer_overlap=via_continue_turn,
            words_before=count_words(sent),
        )

    # -- events ---------------------------------------------------------------

    def on_event(self, event: Event) -> bytes:
        """The bytes to send the client for this upstream event (possibly none)."""
        if self._attempt is None:
            return self._first_attempt(event)
        return self._continuation(event, self._attempt)

    def _first_attempt(self, event: Event) -> bytes:
        name = event.name
        if name == "content_block_delta":
            if self._blocks:
                self._blocks[-1].deltas.append(event)
        elif name == "content_block_start":
            block = event.json().get("content_block", {})
            self._blocks.append(_Block(kind=str(block.get("type", ""))))
        elif name == "content_block_stop":
            if self._blocks:
                self._blocks[-1].closed = True
        elif name == "message_start":
            self.message_started = True
            message = event.json().get("message", {})
            self._start_usage = dict(message.get("usage") or {})
        elif name == "message_delta":
            self.stop_reason_sent = True
            self._final_usage = dict(event.json().get("usage") or {})
        elif name == "message_stop":
            self.finished = True
        return event.raw

    def _continuation(self, event: Event, attempt: _Attempt) -> bytes:
        name = event.name
        if name == "message_start":
            if not self.message_started:  # nothing reached the client before the break
                self.message_started = True
                self._start_usage = dict(event.json().get("message", {}).get("usage") or {})
                return event.raw
            return b""
        if name == "content_block_start":
            return self._block_start(event.json(), attempt)
        if name == "content_block_delta":
            return self._delta(event.json(), attempt)
        if name == "content_block_stop":
            payload = event.json()
            index = self._client_index(int(payload.get("index", 0)), attempt)
            out = self._flush_pending(attempt)
            if index < len(self._blocks):
                self._blocks[index].closed = True
            return out + encode_event(name, {**payload, "index": index})
        if name == "message_delta":
            return self._message_delta(event.json(), attempt)
        if name == "message_stop":
            self.finished = True
        return event.raw

    def _client_index(self, index: int, attempt: _Attempt) -> int:
        if attempt.merge_first:
            return attempt.offset - 1 + index
        return attempt.offset + index

    def _block_start(self, payload: dict[str, Any], attempt: _Attempt) -> bytes:
        index = int(payload.get("index", 0))
        kind = str(payload.get("content_block", {}).get("type", ""))
        if index == 0 and attempt.merge_first and kind == attempt.merge_kind:
            return b""  # the client's open block carries on
        if index == 0 and attempt.merge_first:
            # The continuation did not start with text: close the open block first.
            attempt.merge_first = False
            closing = self._close_open_block()
        else:
            closing = b""
        client_index = self._client_index(index, attempt)
        while len(self._blocks) <= client_index:
            self._blocks.append(_Block(kind=kind))
        return closing + encode_event("content_block_start", {**payload, "index": client_index})

    def _close_open_block(self) -> bytes:
        block = self._blocks[-1]
        block.closed = True
        index = len(self._blocks) - 1
        return encode_event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _delta(self, payload: dict[str, Any], attempt: _Attempt) -> bytes:
        index = self._client_index(int(payload.get("index", 0)), attempt)
        delta = payload.get("delta", {})
        if delta.get("type") != "text_delta" or attempt.trimmed:
            return self._emit_delta(index, payload)
        # Hold the first text until it is long enough to see what it repeats.
        attempt.pending_text += str(delta.get("text", ""))
        attempt.pending_index = index
        needed = _OVERLAP_WINDOW if attempt.buffer_overlap else len(attempt.skip_prefix) + 1
        if len(attempt.pending_text) < needed:
            return b""
        return self._flush_pending(attempt)

    def _flush_pending(self, attempt: _Attempt) -> bytes:
        if attempt.trimmed or not attempt.pending_text:
            return b""
        text = self._trim(attempt.pending_text, attempt)
        attempt.trimmed = True
        attempt.pending_text = ""
        if not text:
            return b""
        index = attempt.pending_index
        payload = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        }
        return self._emit_delta(index, payload)

    def _trim(self, text: str, attempt: _Attempt) -> str:
        sent = self.text_so_far()
        if attempt.buffer_overlap:
            text = _drop_overlap(sent, text)
        # The client already has the whitespace the prefill had to leave out.
        skip = attempt.skip_prefix
        while skip and text and text[0] == skip[0]:
            text, skip = text[1:], skip[1:]
        if (
            attempt.buffer_overlap
            and sent
            and text
            and not sent[-1].isspace()
            and text[0].isalnum()
        ):
            text = " " + text  # the model started a new word without its space
        return text

    def _emit_delta(self, index: int, payload: dict[str, Any]) -> bytes:
        raw = encode_event("content_block_delta", {**payload, "index": index})
        if index < len(self._blocks):
            self._blocks[index].deltas.append(Event("content_block_delta", raw))
        return raw

    def _message_delta(self, payload: dict[str, Any], attempt: _Attempt) -> bytes:
        flushed = self._flush_pending(attempt)
        self.stop_reason_sent = True
        usage = dict(payload.get("usage") or {})
        usage["output_tokens"] = int(usage.get("output_tokens", 0)) + attempt.words_before
        # Input-side counts describe the client's request, as in its message_start.
        for key, value in self._start_usage.items():
            if key in usage and key != "output_tokens":
                usage[key] = value
        self._final_usage = usage
        return flushed + encode_event("message_delta", {**payload, "usage": usage})


def _drop_overlap(sent: str, text: str) -> str:
    """Remove the start of ``text`` that repeats the end of ``sent``."""
    tail = sent.rstrip()
    longest = min(len(text), len(tail))
    for size in range(longest, _MIN_OVERLAP - 1, -1):
        candidate = text[:size]
        at_word_end = size == len(text) or not text[size].isalnum()
        if (
            at_word_end
            and tail.endswith(candidate)
            and (size == len(tail) or not tail[-size - 1].isalnum())
        ):
            return text[size:]
    return text
