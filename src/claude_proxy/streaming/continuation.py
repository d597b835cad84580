"""The request that continues an answer from the text a client already has.

Two forms, as ``anthropic-api.md`` section 6 documents: an assistant prefill of
the text so far (the model carries on from it), or, on models that refuse
prefill, the partial assistant turn followed by a user turn asking to continue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "CONTINUE_PROMPT",
    "Continuation",
    "build_continuation",
    "count_words",
    "refuses_prefill",
]

CONTINUE_PROMPT = "Continue exactly where you left off."
# Claude 4.6 and newer (and the Claude 5 family) answer a prefill with a 400.
_NO_PREFILL = re.compile(
    r"claude-(?:opus|sonnet|haiku)-4-(?:[6-9]|\d\d)|claude-[a-z]+-(?:[5-9]|\d\d)"
)


def refuses_prefill(model: str) -> bool:
    return bool(_NO_PREFILL.search(model))


def count_words(text: str) -> int:
    """Whitespace-separated words: a lower bound of the tokens in English text."""
    return len(text.split())


@dataclass(frozen=True, slots=True)
class Continuation:
    body: bytes
    via_continue_turn: bool
    # The whitespace stripped from the end of the prefill: the client already has
    # it, and the continuation is expected to start with it.
    stripped_tail: str


def build_continuation(
    body: dict[str, Any], sent_text: str, *, continue_turn: bool
) -> Continuation | None:
    """The continuation request, or None when the conversation cannot be extended."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    messages = list(messages)
    prefill = sent_text
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        earlier = _text_of(last.get("content"))
        if earlier is None:
            return None
        prefill = earlier + sent_text
        messages.pop()
    stripped = prefill.rstrip()
    tail = prefill[len(stripped) :]
    if stripped:
        messages.append({"role": "assistant", "content": stripped})
        if continue_turn:
            messages.append({"role": "user", "content": CONTINUE_PROMPT})
    continued = {**body, "messages": messages}
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int):
        # Words never outnumber tokens in English, so the continuation keeps at least
        # the output budget the answer has left.
        continued["max_tokens"] = max(1, max_tokens - count_words(sent_text))
    return Continuation(orjson.dumps(continued), continue_turn and bool(stripped), tail)


def _text_of(content: object) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(block, dict) and block.get("type") == "text" for block in content
    ):
        return "".join(str(block.get("text", "")) for block in content)
    return None
