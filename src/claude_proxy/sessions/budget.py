"""The context budget of a session: which old turns to leave out so that a request fits.

A session's stored history grows with every turn; the model's context window does not.
``fit`` keeps the request's new turn(s) and as much of the newest history as fits in the
window minus ``max_tokens``, leaving out whole turns from the oldest:

* a turn is a user message and everything after it up to the next turn: the assistant's
  answer, and the tool results (user messages) and further answers of a tool loop. A
  ``tool_use`` and the ``tool_result`` that answers it are therefore never parted, and
  the conversation sent still starts with a user message;
* the system prompt and the tools are always kept (they count against the budget);
* the count is the gateway's one estimator, the very sum admission computes
  (``estimate_input_tokens``), so it errs high: what ``fit`` passes, the model takes;
* with a ``step``, turns are left out in steps of about that many tokens, at boundaries
  fixed by the stored history itself (the first turn past each multiple of ``step``
  tokens from its start). The history then starts at the same turn for several turns
  instead of moving by one every turn, so the API's prompt cache, which matches
  prefixes, can read it: a prefix that moves every turn is written (at 1.25x) and never
  read.

When the turns left out are to be summarised instead (``sessions.overflow:
summarize``), ``summary_request`` is the sub-call that asks the model for the summary,
and ``summary_turn`` the two messages that take the turns' place. Everything here is
pure; the session stage does the calling and the storing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from claude_proxy.errors import InvalidRequest
from claude_proxy.jsonbytes import to_json
from claude_proxy.streaming.accumulate import message_text
from claude_proxy.tokens import estimate_input_tokens, estimate_text_tokens

__all__ = [
    "CONTEXT_1M_BETA",
    "DEFAULT_CONTEXT_TOKENS",
    "SUMMARY_PREFIX",
    "Fitted",
    "context_window",
    "fit",
    "summary_request",
    "summary_text",
    "summary_turn",
]

DEFAULT_CONTEXT_TOKENS = 200_000
MILLION_CONTEXT_TOKENS = 1_000_000
# Models with a 1M-token window (API reference section 8, and the simulator's catalogue),
# by id or id prefix: "claude-opus-5" covers claude-opus-5-5 and dated snapshots too.
_MILLION_CONTEXT = (
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-haiku-5",
    "claude-fable-5",
    "claude-mythos-5",
    "claude-mythos-preview",
)
# The beta that gives Sonnet 4 and 4.5 a 1M window (``anthropic-beta`` request header).
CONTEXT_1M_BETA = "context-1m-2025-08-07"

SUMMARY_PREFIX = "Summary of the earlier conversation: "
SUMMARY_ACKNOWLEDGEMENT = "Understood; I will continue from that summary."
_SUMMARY_SYSTEM = (
    "You condense conversations. Write a faithful, compact summary of the conversation "
    "you are given: the facts, names, numbers, decisions, open questions and the user's "
    "preferences that a continuation of it would need. Write only the summary."
)
_SUMMARY_INSTRUCTION = (
    "Summarise this earlier part of a conversation, so that it can be continued "
    "without it.\n\n<conversation>\n{transcript}\n</conversation>"
)


@dataclass(frozen=True, slots=True)
class Fitted:
    """What to send: the kept history then the new turn(s)."""

    messages: list[dict[str, Any]]
    dropped: int
    """Messages of the history left out, all from its start (0: all of it fits)."""
    tokens: int
    """The estimated input tokens of the fitted body (system, tools and messages)."""


def context_window(model: str | None, *, beta: str | None = None) -> int:
    """The model's context window in tokens (200,000 unless the table says 1M).

    ``beta``: the request's ``anthropic-beta`` header; ``context-1m-2025-08-07`` opens a
    1M window (the API refuses it for a model it does not apply to).
    """
    if beta is not None and CONTEXT_1M_BETA in beta:
        return MILLION_CONTEXT_TOKENS
    if model is not None and any(
        model == prefix or model.startswith(prefix + "-") for prefix in _MILLION_CONTEXT
    ):
        return MILLION_CONTEXT_TOKENS
    return DEFAULT_CONTEXT_TOKENS


def fit(
    history: Sequence[dict[str, Any]],
    new_messages: Sequence[dict[str, Any]],
    *,
    system: Any | None = None,
    tools: Any | None = None,
    max_tokens: int,
    context_tokens: int,
    reserve: int = 0,
    step: int = 0,
) -> Fitted:
    """Keep the newest whole turns of ``history`` that fit with ``new_messages``.

    The budget is ``context_tokens - max_tokens - reserve`` input tokens (``reserve``:
    room kept for what the caller will add, a summary). ``step`` (tokens, 0: none): cut
    at the first boundary at or past the newest cut that fits (see the module's notes).
    Raises ``InvalidRequest`` when even the new turn(s) alone (with the stored turn
    their tool results answer, if any) do not fit.
    """
    combined = [*history, *new_messages]
    budget = context_tokens - max_tokens - reserve
    costs = [_message_tokens(message) for message in combined]
    fixed = estimate_input_tokens({"system": system, "tools": tools}) if system or tools else 0
    tokens = fixed + sum(costs)
    if tokens <= budget:
        return Fitted(combined, 0, tokens)
    smallest = tokens
    fitting: int | None = None  # the newest cut that fits
    before = 0  # tokens of the history before the cut
    last_step = 0  # the step of the previous turn's start
    for cut in range(1, len(history) + 1):
        tokens -= costs[cut - 1]
        before += costs[cut - 1]
        if not _starts_turn(combined, cut):
            continue
        smallest = tokens
        # A boundary: the first turn in a new step of the history's own token count,
        # where it stays as the history grows.
        this_step = before // step if step > 0 else cut
        boundary = this_step > last_step
        last_step = this_step
        if fitting is None and tokens <= budget:
            fitting = cut
        if fitting is not None and boundary:
            return Fitted(combined[cut:], cut, tokens)
    if fitting is not None:  # no boundary left past it: the cut that fits
        return Fitted(combined[fitting:], fitting, fixed + sum(costs[fitting:]))
    raise InvalidRequest(
        f"messages: the new turn needs about {smallest:,} input tokens, more than the "
        f"{max(budget + reserve, 0):,} that the context window ({context_tokens:,} tokens) "
        f"leaves after max_tokens ({max_tokens:,}); shorten it or lower max_tokens."
    )


def _message_tokens(message: dict[str, Any]) -> int:
    # estimate_input_tokens is a sum over system, tools and messages: the parts add up
    # to what admission estimates for the whole body.
    return estimate_input_tokens({"messages": [message]})


def _starts_turn(messages: Sequence[dict[str, Any]], index: int) -> bool:
    """Whether the conversation may begin at ``messages[index]``: a user message that
    answers no tool call, after an assistant one (consecutive user messages are one turn)."""
    if index >= len(messages):
        return False
    message = messages[index]
    if message.get("role") != "user" or _has_tool_result(message):
        return False
    return index == 0 or messages[index - 1].get("role") != "user"


def _has_tool_result(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


# -- summaries ----------------------------------------------------------------------


def summary_request(
    dropped: Sequence[dict[str, Any]], *, model: str, max_tokens: int, context_tokens: int
) -> dict[str, Any]:
    """The body of the sub-call that summarises ``dropped``: the turns as one transcript
    (tool calls, results and images as short notes), the oldest part of it cut off
    should it not fit the window itself."""
    transcript = _clip(_transcript(dropped), context_tokens - max_tokens - 1000)
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": _SUMMARY_SYSTEM,
        "messages": [
            {"role": "user", "content": _SUMMARY_INSTRUCTION.format(transcript=transcript)}
        ],
    }


def summary_text(message: Mapping[str, Any]) -> str:
    """The text of the summary sub-call's answer ('' when it has none)."""
    return message_text(message).strip()


def summary_turn(text: str) -> list[dict[str, Any]]:
    """The user message holding the summary, and an assistant acknowledgement so that the
    kept turns (each starting with a user message) still alternate with it."""
    return [
        {"role": "user", "content": SUMMARY_PREFIX + text},
        {"role": "assistant", "content": SUMMARY_ACKNOWLEDGEMENT},
    ]


def _transcript(messages: Sequence[dict[str, Any]]) -> str:
    lines = []
    for message in messages:
        speaker = "Assistant" if message.get("role") == "assistant" else "User"
        lines.append(f"{speaker}: {_content_text(message.get('content'))}")
    return "\n\n".join(lines)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif not isinstance(block, dict):
            continue
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            arguments = to_json(block.get("input", {})).decode()
            parts.append(f"[called the tool {block.get('name')} with {arguments}]")
        elif block.get("type") == "tool_result":
            parts.append(f"[tool result: {_content_text(block.get('content'))}]")
        elif block.get("type") in ("thinking", "redacted_thinking"):
            continue
        else:
            parts.append(f"[{block.get('type')}]")
    return "\n".join(part for part in parts if part)


def _clip(text: str, budget: int) -> str:
    """The end of ``text`` that the estimator counts at most ``budget`` tokens."""
    budget = max(budget, 1)
    while (tokens := estimate_text_tokens(text)) > budget:
        text = text[len(text) - len(text) * budget // tokens + 1 :]
    return text
