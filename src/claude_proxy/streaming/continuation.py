"""The request that continues an answer from the text a client already has.

Two forms, as the API documents for continuing after ``max_tokens``: an assistant
prefill of the text so far (the model carries on from it), or, on models that refuse
prefill (Claude 4.6 and newer), the partial assistant turn followed by a user turn
asking to continue. Used both to heal a broken stream and to continue past
``max_tokens``; the caller says how many output tokens the new part may use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from claude_proxy.jsonbytes import to_json

__all__ = [
    "CONTINUE_PROMPT",
    "Continuation",
    "build_continuation",
    "refuses_prefill",
]

CONTINUE_PROMPT = "Continue exactly where you left off."
# A trailing word of Latin letters and digits (long runs are not words worth re-asking).
_TRAILING_WORD = re.compile(r"(?<![A-Za-z0-9\u00c0-\u024f])[A-Za-z0-9\u00c0-\u024f]{1,40}$")
# Claude 4.6 and newer (and the Claude 5 family) answer a prefill with a 400.
_NO_PREFILL = re.compile(
    r"claude-(?:opus|sonnet|haiku)-4-(?:[6-9]|\d\d)|claude-[a-z]+-(?:[5-9]|\d\d)"
)


def refuses_prefill(model: str) -> bool:
    return bool(_NO_PREFILL.search(model))


@dataclass(frozen=True, slots=True)
class Continuation:
    body: bytes
    via_continue_turn: bool
    # What the client has beyond the prefill (its trailing whitespace, and the word it
    # ended in): the continuation is expected to start with it.
    stripped_tail: str


def build_continuation(
    body: Mapping[str, Any], sent_text: str, *, continue_turn: bool, max_tokens: int | None
) -> Continuation | None:
    """The request continuing ``body``'s answer from ``sent_text``, or None when the
    conversation cannot be extended. ``max_tokens``: what the new part may use (at
    least 1); None keeps the request's own."""
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
    if stripped == prefill:  # no whitespace at the end: the cut may be inside a word
        stripped = _word_boundary(stripped)
    tail = prefill[len(stripped) :]
    if stripped:
        messages.append({"role": "assistant", "content": stripped})
        if continue_turn:
            messages.append({"role": "user", "content": CONTINUE_PROMPT})
    continued = {**body, "messages": messages}
    if max_tokens is not None:
        continued["max_tokens"] = max(1, max_tokens)
    return Continuation(to_json(continued), continue_turn and bool(stripped), tail)


def _word_boundary(text: str) -> str:
    """``text`` without a Latin word it ends in (the cut may have fallen inside it).

    A model carries on far more faithfully from the end of a word than from inside one,
    and the part dropped here is expected again at the start of the continuation (the
    splicer skips it). Scripts without spaces (CJK) are cut anywhere already.
    """
    partial = _TRAILING_WORD.search(text)
    if partial is None:
        return text
    head = text[: partial.start()].rstrip()
    return head or text


def _text_of(content: object) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(block, dict) and block.get("type") == "text" for block in content
    ):
        return "".join(str(block.get("text", "")) for block in content)
    return None
