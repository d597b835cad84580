"""Deterministic tool calls: when to call a tool, its id, and input built from the schema."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from claude_proxy.sim.bpe import tokenize
from claude_proxy.sim.text import seed_from
from claude_proxy.sim.validation import Message, MessagesRequest

__all__ = ["ToolCall", "choose_tool", "schema_value"]

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghijkmnopqrstuvwxyz"
_SAMPLE_WORDS = ("Paris", "alpha", "blue", "report", "north", "seven", "garden", "omega")


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


def schema_value(schema: Any, name: str, rng: random.Random) -> Any:
    """A deterministic value satisfying the simple parts of a JSON schema."""
    if not isinstance(schema, dict):
        return rng.choice(_SAMPLE_WORDS)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return True
    if kind == "array":
        return [schema_value(schema.get("items"), name, rng)]
    if kind == "object":
        return _object_value(schema, rng)
    return f"{name}-{rng.choice(_SAMPLE_WORDS)}"


def _object_value(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    required = schema.get("required")
    names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
    return {n: schema_value(properties.get(n), n, rng) for n in names}


def _last_user_text(base: list[Message]) -> str:
    for message in reversed(base):
        if message.role == "user":
            return " ".join(
                str(b.get("text", "")) for b in message.blocks if b.get("type") == "text"
            )
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
        tool = client_tools[0]
        asked = _last_user_text(base)
        tool = next((t for t in client_tools if t["name"] in asked), tool)
    elif kind == "auto":
        asked = _last_user_text(base)
        tool = next((t for t in client_tools if t["name"] in asked), None)
    if tool is None:
        return None
    name = str(tool["name"])
    rng = random.Random(seed ^ 0x7001)
    arguments = _object_value(tool["input_schema"], rng)
    return ToolCall(_tool_id(seed, name), name, arguments, f"I'll use the {name} tool for this.")
