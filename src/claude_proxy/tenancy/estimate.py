"""A cheap estimate of a Messages request's input tokens, made before it is admitted.

It only has to be close: the reservation it makes is reconciled with the real usage when
the response ends. Rules: Latin-script text ~4 characters per token, CJK (3-byte UTF-8)
~1 character per token; tool definitions and non-text blocks are counted from their
JSON; images and documents get a flat cost.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["estimate_input_tokens"]

MESSAGE_OVERHEAD = 3
BLOCK_OVERHEAD = 1
# The API adds a hidden system prompt of a few hundred tokens when tools are present.
TOOLS_OVERHEAD = 350
# An image costs about width*height/750 tokens, capped near 1,600 by the API's resizing.
IMAGE_TOKENS = 1600
DOCUMENT_TOKENS = 1500


def _text_tokens(text: str) -> int:
    if text.isascii():
        return (len(text) + 3) // 4
    # Encoding runs in C: each CJK code point adds 2 extra UTF-8 bytes over ASCII, so the
    # byte surplus tells how much of the text is CJK without a Python loop over characters.
    chars = len(text)
    wide = min(chars, (len(text.encode("utf-8", "surrogatepass")) - chars) // 2)
    return wide + (chars - wide + 3) // 4


def _json_tokens(value: Any) -> int:
    return (len(orjson.dumps(value)) + 3) // 4


def _block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return _text_tokens(block) + BLOCK_OVERHEAD
    if not isinstance(block, dict):
        return BLOCK_OVERHEAD
    kind = block.get("type")
    if kind == "text":
        cost = _text_tokens(str(block.get("text", "")))
    elif kind == "image":
        cost = IMAGE_TOKENS
    elif kind == "document":
        source = block.get("source")
        cost = DOCUMENT_TOKENS
        if isinstance(source, dict) and source.get("type") == "text":
            cost = _text_tokens(str(source.get("data", "")))
    elif kind == "tool_result" and isinstance(block.get("content"), list):
        cost = sum(_block_tokens(item) for item in block["content"])
    elif kind == "tool_result" and isinstance(block.get("content"), str):
        cost = _text_tokens(block["content"])
    else:  # tool_use, thinking, unknown blocks: what they carry is their JSON
        cost = _json_tokens(block)
    return cost + BLOCK_OVERHEAD


def _content_tokens(content: Any) -> int:
    if isinstance(content, list):
        return sum(_block_tokens(block) for block in content)
    if isinstance(content, str):
        return _text_tokens(content)
    return 0


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Estimated input tokens of ``system`` + ``messages`` + ``tools`` (at least 1)."""
    total = _content_tokens(body.get("system"))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                total += MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        total += TOOLS_OVERHEAD + sum(_json_tokens(tool) for tool in tools)
    return max(1, total)
