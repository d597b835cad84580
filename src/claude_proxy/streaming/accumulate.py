"""Fold a stream's events into the Message a non-stream call would have returned.

For answers the gateway streams upstream but returns whole: a JSON call continued
past ``max_tokens`` (the splice works on events), and internal sub-calls that want a
message. Mirrors what the SDK's ``messages.stream()`` helper rebuilds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from claude_proxy.errors import GatewayError
from claude_proxy.streaming.sse import Event, singles

__all__ = ["Accumulator", "StreamFailed", "message_text"]

# The HTTP status the API uses for each error.type.
_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class StreamFailed(GatewayError):
    """The stream ended with an error event: the whole answer is that error."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = _STATUS.get(error_type, 500)


class Accumulator:
    """Feed events in order; ``message`` once ``message_stop`` has been fed."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self._content: list[dict[str, Any]] = []
        self._json: dict[int, list[str]] = {}
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, events: list[Event]) -> None:
        for event in singles(events):
            self._feed(event)

    def _feed(self, event: Event) -> None:
        name = event.name
        if name in ("ping", ""):
            return
        data = event.json()
        if name == "error":
            error = data.get("error") or {}
            raise StreamFailed(str(error.get("type", "api_error")), str(error.get("message", "")))
        if name == "message_start":
            self.message = dict(data.get("message") or {})
            self.message["content"] = self._content
        elif name == "content_block_start":
            self._content.append(dict(data.get("content_block") or {}))
        elif name == "content_block_delta":
            self._delta(int(data.get("index", 0)), data.get("delta") or {})
        elif name == "content_block_stop":
            index = int(data.get("index", 0))
            parts = self._json.pop(index, None)
            if parts is not None and index < len(self._content):
                joined = "".join(parts)
                self._content[index]["input"] = orjson.loads(joined) if joined else {}
        elif name == "message_delta" and self.message is not None:
            self.message.update(data.get("delta") or {})
            self.message["usage"] = {**self.message.get("usage", {}), **(data.get("usage") or {})}
        elif name == "message_stop":
            self._done = True

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        if index >= len(self._content):
            return
        block = self._content[index]
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + str(delta.get("text", ""))
        elif kind == "input_json_delta":
            self._json.setdefault(index, []).append(str(delta.get("partial_json", "")))
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
        elif kind == "signature_delta":
            block["signature"] = str(delta.get("signature", ""))
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a Message (its text blocks joined; '' when it has none)."""
    content = message.get("content")
    if not isinstance(content, list):
        return ""
    return "".join(
        str(block.get("text", ""))
        for block in content
        if isinstance(block, dict) and block.get("type") == "text"
    )
