"""Restore pseudonyms (and mask values, with ``scan_responses``) in a streamed answer.

A placeholder such as ``<EMAIL_1>`` may arrive cut across two deltas (``<EMA`` then
``IL_1> …``). Each block's text is passed on up to the point where what follows might
still become a placeholder; that tail is held and goes out with the next delta of its
block (at most one event late), or alone, as a delta of its own, before the block's
``content_block_stop``, before the answer's ``message_delta``, ``message_stop`` or
``error``, or when the answer ends early: held text is never lost.

With ``scan_responses`` a value may also arrive in pieces, with the words that give it
away ("SSN", "IBAN", "Bearer") well before it: the last ``MAX_HOLD`` characters of each
block are held, detection runs on the held text with the ``CONTEXT`` characters sent
before it, and a cut never falls inside a value found. So a streamed answer is masked as
the same answer whole would be, ``MAX_HOLD`` characters late. A tool's input
(``input_json_delta``) is then held whole and masked as JSON at its block's end: masking
JSON text piecewise could break its escapes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from claude_proxy.pii.redact import Redaction, json_texts
from claude_proxy.streaming.sse import Event

__all__ = ["CONTEXT", "MAX_HOLD", "StreamRestorer"]

_PARTIAL_PLACEHOLDER = re.compile(r"<[A-Z0-9_]{0,50}\Z")
MAX_HOLD = 96
CONTEXT = 64
# A value longer than this (a private key block) is cut anyway rather than held forever.
_MAX_HELD = 64 * 1024
_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json"}
_ENDS = frozenset({"message_delta", "message_stop", "error"})


class _Held:
    __slots__ = ("context", "field", "kind", "text")

    def __init__(self, kind: str, field: str) -> None:
        self.kind = kind
        self.field = field
        self.text = ""
        self.context = ""  # what was sent before `text`, for the detector's context words


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
            name = event.name
            if name == "content_block_delta":
                self._delta(event, out)
                continue
            if name == "content_block_stop":
                self._release(event.json().get("index"), out)
            elif name in _ENDS:
                out += self.flush()
            out.append(event)
        return out

    def flush(self) -> list[Event]:
        out: list[Event] = []
        for index in list(self._held):
            self._release(index, out)
        return out

    async def settle(self) -> None:
        """Nothing to make durable."""

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
        incoming = str(delta.get(field, ""))
        text = held.text + incoming
        if field == "partial_json" and self._masking:
            held.text = text  # masked whole, as JSON, at the block's end
            return
        ready, held.text = self._split(held, text)
        if ready == text == incoming:
            out.append(event)  # nothing held, nothing changed: the event as it came
        elif ready:
            out.append(_delta_event(payload, delta, field, ready))

    def _split(self, held: _Held, text: str) -> tuple[str, str]:
        """What of ``text`` can go out now (masked and restored), and what to hold."""
        cut = len(text)
        if self._restoring:
            partial = _PARTIAL_PLACEHOLDER.search(text)
            if partial is not None:
                cut = partial.start()
        if not self._masking:
            return self._restore(text[:cut], held.field), text[cut:]
        cut = min(cut, max(len(text) - MAX_HOLD, 0))
        seen = held.context + text
        findings = self._redaction.policy.detector.find(seen)
        offset = len(held.context)
        for finding in findings:
            start, end = finding.start - offset, finding.end - offset
            if start < cut < end and (len(text) - start) <= _MAX_HELD:
                cut = max(start, 0)  # never cut inside a value: hold all of it
        if cut <= 0:
            return "", text
        ready = self._redaction.mask_found(text[:cut], findings, offset)
        held.context = (held.context + text[:cut])[-CONTEXT:]
        return self._restore(ready, held.field), text[cut:]

    def _restore(self, text: str, field: str) -> str:
        if not self._restoring or not text:
            return text
        if field == "partial_json":
            return self._redaction.restore_json_text(text)
        return self._redaction.restore(text)

    def _release(self, index: Any, out: list[Event]) -> None:
        held = self._held.pop(index, None) if isinstance(index, int) else None
        if held is None or not held.text:
            return
        if held.field == "partial_json" and self._masking:
            text = self._whole_json(held.text)
        elif self._masking:
            seen = held.context + held.text
            findings = self._redaction.policy.detector.find(seen)
            masked = self._redaction.mask_found(held.text, findings, len(held.context))
            text = self._restore(masked, held.field)
        else:
            text = self._restore(held.text, held.field)
        payload = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": held.kind, held.field: text},
        }
        out.append(Event.encode("content_block_delta", payload))

    def _whole_json(self, text: str) -> str:
        """A tool's whole input, masked string by string, pseudonyms restored."""
        redaction = self._redaction
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            # Not JSON after all (a cut answer): masking the text is the safe way to fail.
            return redaction.restore_json_text(redaction.mask(text))
        masked = json_texts(value, redaction.mask)
        return orjson.dumps(json_texts(masked, redaction.restore)).decode()


def _delta_event(payload: dict[str, Any], delta: dict[str, Any], field: str, text: str) -> Event:
    return Event.encode("content_block_delta", {**payload, "delta": {**delta, field: text}})
