"""The gateway's one token estimator: a fast count of a text's tokens that errs high.

The gateway never sees the upstream's tokenizer. Where it must count tokens itself (the
input it reserves at admission, the text of a broken stream whose usage never arrived, the
``max_tokens`` left for a continuation), it estimates, and errs high: a budget computed
from an over-estimate is never exceeded, and a reservation reconciled later costs nothing.

Rules, per kind of character (calibrated with ``benchmarks/estimate.py`` against the
simulator's BPE-like tokenizer; the real tokenizer's English runs at 3.5-4.5 characters
per token, so against the API these err further on the high side):

* letters and whitespace: one token per ``LATIN_CHARS_PER_TOKEN`` characters, capital
  letters one per ``UPPER_CHARS_PER_TOKEN`` (constants in code, acronyms: BPE merges
  capitals less);
* digits: one token per ``DIGITS_PER_TOKEN`` (BPE keeps numbers in short groups);
* ASCII punctuation and symbols: one token each (BPE rarely merges them with letters);
* CJK (three-byte UTF-8) characters: ``CJK_TOKENS_PER_CHAR`` tokens each;
* other non-ASCII characters: one token each;
* plus one per text, so that a short fragment is not rounded down to too little.

Whole requests (``estimate_input_tokens``) add the API's per-message and per-block
framing, a flat cost for images and documents, and the hidden tool prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claude_proxy.jsonbytes import to_json

__all__ = [
    "estimate_block_tokens",
    "estimate_input_tokens",
    "estimate_text_tokens",
    "estimate_tool_tokens",
]

LATIN_CHARS_PER_TOKEN = 3.0
UPPER_CHARS_PER_TOKEN = 2.0
DIGITS_PER_TOKEN = 1.5
CJK_TOKENS_PER_CHAR = 1.5
MESSAGE_OVERHEAD = 3
BLOCK_OVERHEAD = 1
# The API adds a hidden system prompt of a few hundred tokens when tools are present.
TOOLS_OVERHEAD = 350
# An image costs about width*height/750 tokens, capped near 1,600 by the API's resizing.
IMAGE_TOKENS = 1600
DOCUMENT_TOKENS = 1500

# bytes.translate deletes in C: the length it removes is the punctuation count, with no
# Python loop over characters. UTF-8 never uses ASCII bytes inside a multi-byte character,
# so counting bytes counts characters.
_ASCII_PUNCTUATION = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def estimate_text_tokens(text: str) -> int:
    """Tokens ``text`` may cost, erring high (0 for the empty string)."""
    if not text:
        return 0
    chars = len(text)
    encoded = text.encode("utf-8", "surrogatepass")
    punctuation = len(encoded) - len(encoded.translate(None, _ASCII_PUNCTUATION))
    digits = len(encoded) - len(encoded.translate(None, _DIGITS))
    upper = len(encoded) - len(encoded.translate(None, _UPPER))
    fixed = 1 + punctuation + _ceil_div(digits, DIGITS_PER_TOKEN)
    fixed += _ceil_div(upper, UPPER_CHARS_PER_TOKEN)
    rest = chars - punctuation - digits - upper
    if len(encoded) == chars:  # ASCII
        return fixed + _ceil_div(rest, LATIN_CHARS_PER_TOKEN)
    # Each CJK code point takes two bytes more in UTF-8 than an ASCII one, each other
    # non-ASCII one one to three more: the byte surplus bounds how many there are.
    surplus = len(encoded) - chars
    wide = min(rest, surplus // 2)
    narrow = max(0, surplus - 2 * wide)
    latin = max(0, rest - wide - narrow)
    return (
        fixed
        + narrow
        + _ceil_div(wide * CJK_TOKENS_PER_CHAR, 1.0)
        + _ceil_div(latin, LATIN_CHARS_PER_TOKEN)
    )


def _ceil_div(amount: float, per: float) -> int:
    return -int(-amount // per)


def _json_tokens(value: Any) -> int:
    # to_json: a tool schema or input nested past orjson's 254 levels still has a size.
    return estimate_text_tokens(to_json(value).decode())


def _block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return estimate_text_tokens(block) + BLOCK_OVERHEAD
    if not isinstance(block, dict):
        return BLOCK_OVERHEAD
    kind = block.get("type")
    if kind == "text":
        cost = estimate_text_tokens(str(block.get("text", "")))
    elif kind == "image":
        cost = IMAGE_TOKENS
    elif kind == "document":
        source = block.get("source")
        cost = DOCUMENT_TOKENS
        if isinstance(source, dict) and source.get("type") == "text":
            cost = estimate_text_tokens(str(source.get("data", "")))
    elif kind == "tool_result" and isinstance(block.get("content"), list):
        cost = sum(_block_tokens(item) for item in block["content"])
    elif kind == "tool_result" and isinstance(block.get("content"), str):
        cost = estimate_text_tokens(block["content"])
    else:  # tool_use, thinking, unknown blocks: what they carry is their JSON
        cost = _json_tokens(block)
    return cost + BLOCK_OVERHEAD


def estimate_block_tokens(block: Any) -> int:
    """One content block (or a string content, as one block), with its framing; a
    message's own framing (``MESSAGE_OVERHEAD``) is not included."""
    return _block_tokens(block)


def estimate_tool_tokens(tool: Any) -> int:
    """One tool definition; the hidden tool prompt (``TOOLS_OVERHEAD``) is not included."""
    return _json_tokens(tool)


def _content_tokens(content: Any) -> int:
    if isinstance(content, list):
        return sum(_block_tokens(block) for block in content)
    if isinstance(content, str):
        return estimate_text_tokens(content)
    return 0


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
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
