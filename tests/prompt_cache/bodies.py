"""Request bodies for prompt-caching tests: long texts by estimated tokens, conversations."""

from __future__ import annotations

from typing import Any

from claude_proxy.tokens import estimate_text_tokens

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}}  # fmt: skip


def text(tokens: int, topic: str = "rivers") -> str:
    """Prose of at least ``tokens`` estimated tokens (and not many more)."""
    unit = f"notes on {topic} and harbors "
    per_unit = estimate_text_tokens(unit * 2) - estimate_text_tokens(unit)
    out = unit * max(1, -(-tokens // per_unit))
    while estimate_text_tokens(out) < tokens:
        out += unit
    return out.strip()


def conversation(turns: int, *, words: int = 40) -> list[dict[str, Any]]:
    """``turns`` user/assistant exchanges as clients send them (string contents), then
    the next user turn."""
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question {i}: " + text(words, f"q{i}")})
        messages.append({"role": "assistant", "content": f"Answer {i}: " + text(words, f"a{i}")})
    messages.append({"role": "user", "content": f"Question {turns}: what next?"})
    return messages


def body(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": messages, **fields}


def markers(value: Any) -> list[Any]:
    """Every cache_control value in ``value``, in document order."""
    found: list[Any] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "cache_control":
                found.append(item)
            else:
                found.extend(markers(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(markers(item))
    return found
