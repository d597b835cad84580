"""Deterministic tool calls: when to call a tool, its id, and input built from the schema."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import orjson

from claude_proxy.sim.bpe import tokenize
from claude_proxy.sim.schema import instance
from claude_proxy.sim.text import seed_from
from claude_proxy.sim.validation import Message, MessagesRequest

__all__ = ["ToolCall", "choose_tool", "mentions"]

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]
    intro: str = ""  # the text before the call

    def fragments(self, rng: random.Random) -> list[tuple[str, int]]:
        """input_json_delta fragments: first "" (as the API often sends), then 2-5 tokens each."""
        tokens = tokenize(orjson.dumps(self.input).decode())
        out: list[tuple[str, int]] = [("", 0)]
        i = 0
        while i < len(tokens):
            group = tokens[i : i + rng.randint(2, 5)]
            out.append(("".join(group), len(group)))
            i += len(group)
        return out


# Verbs that name what a tool does to something, not the thing it is about.
_GENERIC = frozenset(
    [
        "get",
        "set",
        "list",
        "fetch",
        "find",
        "create",
        "update",
        "delete",
        "make",
        "do",
        "run",
        "call",
        "use",
        "query",
        "search",
        "lookup",
        "look",
        "up",
        "check",
        "send",
        "add",
        "remove",
        "tool",
        "api",
    ]
)
_WORD = re.compile(r"[A-Za-z][a-z]*|[0-9]+")


def mentions(text: str, tool_name: str) -> bool:
    """The documented rule for ``tool_choice: auto``: call a tool when what the user last
    typed (the last text block of the latest user turn) names it, or uses a word of its
    name other than a generic verb
    ("What's the weather in Paris?" calls ``get_weather``; "read notes.txt" calls
    ``Read``). Words match whole and case-insensitively, a plural ``s`` aside."""
    if tool_name and re.search(rf"(?<![\w-]){re.escape(tool_name)}(?![\w-])", text):
        return True  # named whole: "Ready" does not name Read
    said = {w.lower() for w in _WORD.findall(text)}
    said |= {w[:-1] for w in said if len(w) > 3 and w.endswith("s")}
    words = {w.lower() for w in _WORD.findall(tool_name)} - _GENERIC
    return any(len(w) >= 3 and w in said for w in words)


def _last_user_text(base: list[Message]) -> str:
    """What the user last typed: the last text block of the latest user turn. Clients put
    context before it (Claude Code's ``<system-reminder>`` blocks name tools of their own)."""
    for message in reversed(base):
        if message.role == "user":
            texts = [
                str(b.get("text", ""))
                for b in message.blocks
                if b.get("type") == "text"
                and not str(b.get("text", "")).lstrip().startswith("<system-reminder>")
            ]
            return texts[-1] if texts else ""
    return ""


def _tool_id(seed: int, name: str) -> str:
    rng = random.Random(seed_from(seed.to_bytes(8, "big"), name.encode()))
    return "toolu_01" + "".join(rng.choice(_ID_ALPHABET) for _ in range(22))


def choose_tool(req: MessagesRequest, base: list[Message], seed: int) -> ToolCall | None:
    """The tool the reply calls, or None (answer in text)."""
    client_tools = [t for t in req.tools if isinstance(t.get("input_schema"), dict)]
    if not client_tools:
        return None
    # A tool_result as the latest user turn means the tool already ran: answer in text.
    # (System turns, which Claude Code appends, are instructions, not the user's turn.)
    latest = next((m for m in reversed(base) if m.role != "system"), None)
    if latest is not None and any(b.get("type") == "tool_result" for b in latest.blocks):
        return None
    choice = req.tool_choice or {"type": "auto"}
    kind = choice.get("type")
    tool: dict[str, Any] | None = None
    if kind == "tool":
        tool = next(t for t in client_tools if t["name"] == choice.get("name"))
    elif kind == "any":
        asked = _last_user_text(base)
        tool = next((t for t in client_tools if mentions(asked, t["name"])), client_tools[0])
    elif kind == "auto":
        asked = _last_user_text(base)
        tool = next((t for t in client_tools if mentions(asked, t["name"])), None)
    if tool is None:
        return None
    name = str(tool["name"])
    rng = random.Random(seed ^ 0x7001)
    arguments = instance(tool["input_schema"], rng, "input")
    return ToolCall(_tool_id(seed, name), name, arguments, f"I'll use the {name} tool for this.")
