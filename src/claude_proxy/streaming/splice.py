"""Splice the events of several upstream parts into one client stream.

An answer may take several upstream calls ("parts"): the first one, then a *heal*
after a break (the stream was cut or failed after content reached the client) or a
*continuation* after it stopped at ``max_tokens`` when the client asked for more
(``x-proxy-max-continuations``). Both carry on from the text the client already has,
and the client sees one message: one ``message_start``, block indices that count up
without gaps, no repeated or missing text, one ``message_delta`` whose usage covers
the whole answer, one ``message_stop``.

The first part's events pass through untouched (only event names and block
starts/stops are looked at, to keep the happy path cheap). Text deltas are kept as
raw bytes (runs of them as they came, see ``sse.EventSplitter.feed_runs``) and
decoded only if a break makes the text so far necessary. Events of a
later part are rewritten: its ``message_start`` is dropped, its first text block
merges into the client's open one, indices are shifted, and the text it repeats from
what the client already has is removed.

Usage is counted in tokens, never words: each part's reported ``output_tokens``, and
for a part that broke before reporting any, the count its caller gives
``end_part`` (the gateway's estimate, which errs high). The ``max_tokens`` a heal may
still use is what the current segment (the parts since the last continuation) has
not: ``segment_tokens``.

Holding back: while a continuation is allowed (``may_continue``), a text block's
``content_block_stop`` and a ``max_tokens`` ``message_delta``/``message_stop`` are
held until the next event shows whether the answer goes on, so that a continued
block stays open for the client; ``finish_held`` releases them when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claude_proxy.streaming.sse import Event

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
        for run in self.deltas:
            for event in run.each():
                delta = event.json().get("delta", {})
                if delta.get("type") == "text_delta":
                    parts.append(str(delta.get("text", "")))
        return "".join(parts)


@dataclass(slots=True)
class _Part:
    """How a later part's blocks map onto the client's stream."""

    offset: int  # client index of the part's block 0 (when not merged)
    merge_first: bool
    merge_kind: str
    skip_prefix: str  # text the client already has, expected at the start
    buffer_overlap: bool  # continue turn: hold text until the overlap is known
    pending_text: str = ""
    pending_index: int = 0
    trimmed: bool = False


class Splicer:
    def __init__(self) -> None:
        self.message_started = False
        self.part_ended = False  # the current part's message_stop arrived
        self.finished = False  # the client's message_stop has been emitted
        self.stop_reason_sent = False
        # Set by the relay before each part: a max_tokens stop may be continued.
        self.may_continue = False
        self.truncated = False  # this part stopped at max_tokens; its end is held
        self._blocks: list[_Block] = []
        self._start_usage: dict[str, Any] = {}
        self._final_usage: dict[str, Any] = {}
        self._part: _Part | None = None
        self._held_stop: Event | None = None
        self._held_delta: dict[str, Any] | None = None
        self._counted = 0  # output tokens of the parts before the current one
        self._segment = 0  # ... of those since the last continuation
        self._part_start = 0  # characters of text before the current part
        self._part_reported = 0  # output tokens the current part reported

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
        """The message's usage as the client saw it, once its message_delta was sent."""
        if not self.stop_reason_sent:
            return None
        return {**self._start_usage, **self._final_usage}

    def text_so_far(self) -> str:
        return "".join(block.text() for block in self._blocks)

    def part_text(self) -> str:
        """The text the client got from the current part."""
        return self.text_so_far()[self._part_start :]

    @property
    def part_reported_tokens(self) -> int:
        """Output tokens the current part reported (0 until its message_delta)."""
        return self._part_reported

    @property
    def segment_tokens(self) -> int:
        """Output tokens of the finished parts since the answer's last continuation."""
        return self._segment

    # -- switching parts ------------------------------------------------------

    def end_part(self, tokens: int, *, new_segment: bool) -> None:
        """The current part is over and cost ``tokens``; ``new_segment``: the next part
        continues past max_tokens (a fresh budget) rather than healing a break."""
        self._counted += tokens
        self._segment = 0 if new_segment else self._segment + tokens

    def begin_part(self, stripped_tail: str, via_continue_turn: bool) -> None:
        """The next events come from a new part continuing the text so far."""
        if self._held_stop is not None:
            self._blocks[-1].closed = False  # the client never saw it close
        self._held_stop = None
        self._held_delta = None
        self.part_ended = self.truncated = False
        self._part_reported = 0
        open_block = self._blocks[-1] if self._blocks and not self._blocks[-1].closed else None
        sent = self.text_so_far()
        self._part_start = len(sent)
        # A part carries on in the client's open block when it is text, or when
        # nothing has been written into it yet (then it was a plain retry).
        mergeable = open_block is not None and (open_block.kind == "text" or not open_block.deltas)
        self._part = _Part(
            offset=len(self._blocks),
            merge_first=mergeable,
            merge_kind=open_block.kind if open_block is not None else "",
            skip_prefix=stripped_tail,
            buffer_overlap=via_continue_turn,
        )

    def finish_held(self) -> list[Event]:
        """No continuation after all: the held end of the answer, then message_stop."""
        out: list[Event] = []
        if self._held_stop is not None:
            out.append(self._held_stop)
            self._held_stop = None
        if self._held_delta is not None:
            out.append(self._message_delta(self._held_delta, None))
            self._held_delta = None
        if not self.finished and self.stop_reason_sent:
            out.append(Event.encode("message_stop", {"type": "message_stop"}))
            self.finished = True
        self.truncated = False
        return out

    def release_stop(self) -> list[Event]:
        """The held block stop, if any (before an error event ends the answer)."""
        out: list[Event] = []
        self._release_stop(out)
        return out

    def end_at_max_tokens(self) -> list[Event]:
        """End the answer here with ``stop_reason: max_tokens`` (its budget is spent)."""
        out = self.release_stop()
        if self._blocks and not self._blocks[-1].closed:
            self._close_open_block(out)
        payload = {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 0},
        }
        out.append(self._message_delta(payload, None))
        out.append(Event.encode("message_stop", {"type": "message_stop"}))
        self.finished = True
        return out

    # -- events ---------------------------------------------------------------

    def on_event(self, event: Event, out: list[Event]) -> None:
        """Append to ``out`` what the client gets for this upstream event (maybe nothing)."""
        if self._part is None:
            self._first_part(event, out)  # a run of deltas passes whole
        else:
            for single in event.each():  # rewritten one by one
                self._later_part(single, out, self._part)

    def _first_part(self, event: Event, out: list[Event]) -> None:
        name = event.name
        if name == "content_block_delta":
            if self._blocks:
                # Kept for the whole answer (to heal from): a run's split parts, a second
                # copy of its bytes, are only for the sink's use now.
                kept = event if event.parts is None else Event(name, event.raw, event.count)
                self._blocks[-1].deltas.append(kept)
        elif name == "content_block_start":
            block = event.json().get("content_block", {})
            self._release_stop(out)
            self._blocks.append(_Block(kind=str(block.get("type", ""))))
        elif name == "content_block_stop":
            if self._blocks:
                self._blocks[-1].closed = True
                if self.may_continue and self._blocks[-1].kind == "text":
                    self._held_stop = event
                    return
        elif name == "message_start":
            self.message_started = True
            message = event.json().get("message", {})
            self._start_usage = dict(message.get("usage") or {})
        elif name == "message_delta":
            self._on_message_delta(event.json(), event, out)
            return
        elif name == "message_stop":
            self._on_message_stop(event, out)
            return
        out.append(event)

    def _later_part(self, event: Event, out: list[Event], part: _Part) -> None:
        name = event.name
        if name == "message_start":
            if not self.message_started:  # nothing reached the client before the break
                self.message_started = True
                self._start_usage = dict(event.json().get("message", {}).get("usage") or {})
                out.append(event)
        elif name == "content_block_start":
            self._block_start(event.json(), part, out)
        elif name == "content_block_delta":
            self._delta(event.json(), part, out)
        elif name == "content_block_stop":
            payload = event.json()
            index = self._client_index(int(payload.get("index", 0)), part)
            self._flush_pending(part, out)
            stop = Event.encode(name, {**payload, "index": index})
            if index < len(self._blocks):
                block = self._blocks[index]
                block.closed = True
                if self.may_continue and block.kind == "text":
                    self._held_stop = stop
                    return
            out.append(stop)
        elif name == "message_delta":
            self._flush_pending(part, out)
            self._on_message_delta(event.json(), None, out)
        elif name == "message_stop":
            self._on_message_stop(event, out)
        else:
            out.append(event)

    def _on_message_delta(
        self, payload: dict[str, Any], original: Event | None, out: list[Event]
    ) -> None:
        usage = payload.get("usage") or {}
        reported = usage.get("output_tokens", 0)
        self._part_reported = reported if isinstance(reported, int) else 0
        stop_reason = (payload.get("delta") or {}).get("stop_reason")
        if (
            self.may_continue
            and stop_reason == "max_tokens"
            and self.blocker() is None
            and self.text_so_far().strip()
        ):
            self.truncated = True
            self._held_delta = payload
            return
        self._release_stop(out)
        out.append(self._message_delta(payload, original))

    def _on_message_stop(self, event: Event, out: list[Event]) -> None:
        self.part_ended = True
        if self.truncated:
            return  # held with the message_delta: the relay decides
        self.finished = True
        out.append(event)

    def _release_stop(self, out: list[Event]) -> None:
        if self._held_stop is not None:
            out.append(self._held_stop)
            self._held_stop = None

    def _client_index(self, index: int, part: _Part) -> int:
        if part.merge_first:
            return part.offset - 1 + index
        return part.offset + index

    def _block_start(self, payload: dict[str, Any], part: _Part, out: list[Event]) -> None:
        index = int(payload.get("index", 0))
        kind = str(payload.get("content_block", {}).get("type", ""))
        if index == 0 and part.merge_first and kind == part.merge_kind:
            return  # the client's open block carries on
        if index == 0 and part.merge_first:
            # The part did not start with text: close the open block first.
            part.merge_first = False
            self._close_open_block(out)
        else:
            self._release_stop(out)
        client_index = self._client_index(index, part)
        while len(self._blocks) <= client_index:
            self._blocks.append(_Block(kind=kind))
        out.append(Event.encode("content_block_start", {**payload, "index": client_index}))

    def _close_open_block(self, out: list[Event]) -> None:
        self._held_stop = None
        block = self._blocks[-1]
        block.closed = True
        index = len(self._blocks) - 1
        out.append(
            Event.encode("content_block_stop", {"type": "content_block_stop", "index": index})
        )

    def _delta(self, payload: dict[str, Any], part: _Part, out: list[Event]) -> None:
        index = self._client_index(int(payload.get("index", 0)), part)
        delta = payload.get("delta", {})
        if delta.get("type") != "text_delta" or part.trimmed:
            self._emit_delta(index, payload, out)
            return
        # Hold the first text until it is long enough to see what it repeats.
        part.pending_text += str(delta.get("text", ""))
        part.pending_index = index
        needed = _OVERLAP_WINDOW if part.buffer_overlap else len(part.skip_prefix) + 1
        if len(part.pending_text) >= needed:
            self._flush_pending(part, out)

    def _flush_pending(self, part: _Part, out: list[Event]) -> None:
        if part.trimmed or not part.pending_text:
            return
        text = self._trim(part.pending_text, part)
        part.trimmed = True
        part.pending_text = ""
        if not text:
            return
        index = part.pending_index
        payload = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        }
        self._emit_delta(index, payload, out)

    def _trim(self, text: str, part: _Part) -> str:
        sent = self.text_so_far()
        skip = part.skip_prefix
        if part.buffer_overlap:
            # A continue turn may repeat the end of what the model was given: the text
            # so far without what the prefill left out.
            given = sent[: len(sent) - len(skip)] if skip and sent.endswith(skip) else sent
            text = _drop_overlap(given, text)
        # The client already has what the prefill had to leave out (trailing whitespace,
        # the word it was cut in).
        ended_at_word = not skip
        while skip and text and text[0] == skip[0]:
            text, skip = text[1:], skip[1:]
        if (
            part.buffer_overlap
            and ended_at_word
            and sent
            and text
            and not sent[-1].isspace()
            and text[0].isalnum()
        ):
            text = " " + text  # the model started a new word without its space
        return text

    def _emit_delta(self, index: int, payload: dict[str, Any], out: list[Event]) -> None:
        event = Event.encode("content_block_delta", {**payload, "index": index})
        if index < len(self._blocks):
            self._blocks[index].deltas.append(event)
        out.append(event)

    def _message_delta(self, payload: dict[str, Any], original: Event | None) -> Event:
        self.stop_reason_sent = True
        usage = dict(payload.get("usage") or {})
        if original is not None and self._counted == 0:
            self._final_usage = usage
            return original  # a single part's own usage: nothing to rewrite
        reported = usage.get("output_tokens", 0)
        usage["output_tokens"] = self._counted + (reported if isinstance(reported, int) else 0)
        # Input-side counts describe the client's request, as in its message_start.
        for key, value in self._start_usage.items():
            if key in usage and key != "output_tokens":
                usage[key] = value
        self._final_usage = usage
        return Event.encode("message_delta", {**payload, "usage": usage})


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
