"""Fold stream events into the message they describe, as the SDK's own stream helper does."""

from __future__ import annotations

from typing import Any

import orjson
from anthropic.types import Message

__all__ = ["Snapshot"]


class Snapshot:
    """Feed events in order; ``message()`` is the message so far."""

    __slots__ = ("_message", "_partial_json")

    def __init__(self) -> None:
        self._message: dict[str, Any] | None = None
        self._partial_json: dict[int, str] = {}

    def message(self) -> Message | None:
        if self._message is None:
            return None
        return Message.model_validate(self._message)

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self._message = {**event["message"], "content": []}
            return
        message = self._message
        if message is None:
            return
        content: list[dict[str, Any]] = message["content"]
        if kind == "content_block_start":
            content.append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            self._delta(content[event["index"]], event["index"], event["delta"])
        elif kind == "content_block_stop":
            partial = self._partial_json.pop(event["index"], None)
            if partial is not None:
                content[event["index"]]["input"] = orjson.loads(partial) if partial else {}
        elif kind == "message_delta":
            message.update(event.get("delta") or {})
            usage = {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            message["usage"] = {**(message.get("usage") or {}), **usage}

    def _delta(self, block: dict[str, Any], index: int, delta: dict[str, Any]) -> None:
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta["text"]
        elif kind == "input_json_delta":
            self._partial_json[index] = self._partial_json.get(index, "") + delta["partial_json"]
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta["citation"])
