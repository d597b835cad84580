"""Restore pseudonyms (and mask values, with ``scan_responses``) in a streamed answer.

A placeholder such as ``<EMAIL_1>`` may arrive cut across two deltas (``<EMA`` then
``IL_1> …``). Each block's text is passed on up to the point where what follows might
still become a placeholder; that tail is held and goes out with the next delta of its
block (at most one event late), or alone, as a delta of its own, just before the
block's ``content_block_stop`` or when the answer ends early.

With ``scan_responses`` the held tail is the last run that could still grow into a
value (a number whose digit groups go on, an address, a key), up to ``MAX_HOLD``
characters, so that a value is masked whole even when it is streamed in pieces.

Tool input deltas (``input_json_delta``) carry JSON text: a restored value is
inserted JSON-escaped.
"""

from __future__ import annotations

import re
from typing import Any

from claude_proxy.pii.redact import PLACEHOLDER, Redaction, json_fragment
from claude_proxy.streaming.sse import Event

__all__ = ["MAX_HOLD", "StreamRestorer"]

# The longest a placeholder can be: "<" + a 40-character name + "_" + digits + ">".
_PARTIAL_PLACEHOLDER = re.compile(r"<[A-Z0-9_]{0,50}\Z")
MAX_HOLD = 96
# What may still grow into a value: a run of characters values are made of, with the
# digit groups of a card or phone number ("4111 1111 …") counted as one run.
_GROWING = re.compile(r"(?:[0-9][0-9 \-().]*|[A-Za-z0-9@._%+\-:/=~]+)\Z")

_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json"}


class _Held:
    __slots__ = ("field", "kind", "text")

    def __init__(self, kind: str, field: str) -> None:
        self.kind = kind
        self.field = field
        self.text = ""


class StreamRestorer:
    """An ``EventFilter`` for one streamed answer of a redacted request."""

    def __init__(self, redaction: Redaction) -> None:
        self._redaction = redaction
        self._restoring = bool(redaction.originals)
        self._masking = redaction.policy.scan_responses
        self._held: dict[int, _Held] = {}

    def on_events(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if event.name == "content_block_delta":
                self._delta(event, out)
            elif event.name == "content_block_stop":
                self._release(event.json().get("index"), out)
                out.append(event)
            else:
                out.append(event)
        return out

    def flush(self) -> list[Event]:
        out: list[Event] = []
        for index in list(self._held):
            self._release(index, out)
        return out

    def _delta(self, event: Event, out: list[Event]) -> None:
        payload = event.json()
        delta = payload.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        field = _FIELDS.get(kind) if isinstance(kind, str) else None
        index = payload.get("index")
        if field is None or not isinstance(index, int) or not isinstance(delta, dict):
            out.append(event)
            return
        held = self._held.get(index)
        if held is None:
            held = self._held[index] = _Held(str(kind), field)
        text = held.text + str(delta.get(field, ""))
        cut = self._safe_end(text)
        ready, held.text = text[:cut], text[cut:]
        if ready:
            new_delta = {**delta, field: self._fix(ready, held.field)}
            out.append(Event.encode("content_block_delta", {**payload, "delta": new_delta}))

    def _safe_end(self, text: str) -> int:
        """How much of ``text`` can go out now: all but a tail that may still change."""
        cut = len(text)
        if self._restoring:
            partial = _PARTIAL_PLACEHOLDER.search(text)
            if partial is not None:
                cut = partial.start()
        if self._masking:
            growing = _GROWING.search(text, max(len(text) - MAX_HOLD, 0))
            if growing is not None:
                cut = min(cut, growing.start())
        return cut

    def _fix(self, text: str, field: str) -> str:
        redaction = self._redaction
        if self._masking:
            text = redaction.mask(text)
        if not self._restoring:
            return text
        if field == "partial_json":
            return _restore_json(redaction, text)
        return redaction.restore(text)

    def _release(self, index: Any, out: list[Event]) -> None:
        held = self._held.pop(index, None) if isinstance(index, int) else None
        if held is None or not held.text:
            return
        delta = {"type": held.kind, held.field: self._fix(held.text, held.field)}
        payload = {"type": "content_block_delta", "index": index, "delta": delta}
        out.append(Event.encode("content_block_delta", payload))


def _restore_json(redaction: Redaction, text: str) -> str:
    """Placeholders inside JSON text: each value goes in escaped as a JSON string part."""
    originals = redaction.originals

    def original(match: re.Match[str]) -> str:
        value = originals.get(match.group(1))
        return match.group() if value is None else json_fragment(value)

    return PLACEHOLDER.sub(original, text)
