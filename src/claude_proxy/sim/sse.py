"""Server-sent events: framing and the event sequence of a streamed reply (section 2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from claude_proxy.sim.generation import Block, Reply

__all__ = ["encode", "reply_events"]

# One stream event: (name, payload, output tokens generated once it is sent).
Event = tuple[str, dict[str, Any], int]


def encode(name: str, payload: dict[str, Any]) -> bytes:
    """``event: <name>`` / ``data: <json>`` / blank line; the json's `type` is the name."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _delta(block: Block, text: str) -> dict[str, Any]:
    if block.kind == "thinking":
        return {"type": "thinking_delta", "thinking": text}
    if block.kind == "tool_use":
        return {"type": "input_json_delta", "partial_json": text}
    return {"type": "text_delta", "text": text}


def reply_events(message: dict[str, Any], reply: Reply, usage: dict[str, Any]) -> Iterator[Event]:
    """All events of a stream in order; token counts drive the pacing."""
    start_usage = {**usage, "output_tokens": min(1, reply.output_tokens)}
    yield (
        "message_start",
        {"type": "message_start", "message": {**message, "usage": start_usage}},
        0,
    )
    produced = 0
    for index, block in enumerate(reply.blocks):
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block.shell()},
            produced,
        )
        if index == 0:
            yield "ping", {"type": "ping"}, produced
        for text, tokens in block.deltas:
            produced += tokens
            if not text and block.kind != "tool_use":
                continue  # the rest of a character costs tokens but has no text to send
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": _delta(block, text)},
                produced,
            )
        if block.kind == "thinking":
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": block.signature},
                },
                produced,
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}, produced
    final_usage = {**usage, "output_tokens": reply.output_tokens}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
            "usage": final_usage,
        },
        reply.output_tokens,
    )
    yield "message_stop", {"type": "message_stop"}, reply.output_tokens
