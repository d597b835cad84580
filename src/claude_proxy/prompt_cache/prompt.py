"""A Messages request as the prompt cache reads it: units in order, with estimated tokens.

The API caches a prefix of tools, then system blocks, then message blocks, up to a
block marked ``cache_control``. ``flatten`` walks a request body once and gives each
unit (a tool, a system block, a message block, or a string system or content as one
block) its position, the estimated tokens of the prompt up to and including it (the
gateway's estimator, which errs high), whether a breakpoint may go on it, and the
client's own breakpoints with their TTLs, nested ones too (``marks``). A body of
another shape gives None: the gateway leaves it for the API to answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from claude_proxy.prompt_cache.marks import inner_marks
from claude_proxy.tokens.estimate import (
    MESSAGE_OVERHEAD,
    TOOLS_OVERHEAD,
    estimate_block_tokens,
    estimate_text_tokens,
    estimate_tool_tokens,
)

__all__ = ["CACHEABLE_BLOCKS", "Mark", "Prompt", "Unit", "Where", "flatten"]

Where = Literal["tools", "system", "messages"]
# The blocks the API takes cache_control on (section 5). Never thinking or
# redacted_thinking blocks, sub-blocks, or empty text; server-tool blocks are left alone
# for want of a rule saying they may.
CACHEABLE_BLOCKS = frozenset({"text", "image", "document", "tool_use", "tool_result"})
_ROLES = frozenset({"user", "assistant"})


@dataclass(frozen=True, slots=True)
class Unit:
    """One position of the prompt the cache sees."""

    where: Where
    index: int  # of the tool, the system block, or the message
    block: int | None  # of the block in the message; None: a string content or system
    end: int  # estimated tokens of the prompt up to and including this unit
    cacheable: bool  # the API takes a breakpoint here (the client may have one here)


@dataclass(frozen=True, slots=True)
class Mark:
    """A breakpoint the client set: at which unit, with which TTL."""

    unit: int
    ttl: str


@dataclass(slots=True)
class Prompt:
    units: list[Unit] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)  # in prompt order
    roles: list[str] = field(default_factory=list)  # of each message
    valid_marks: bool = True  # every mark of the client's is one the API takes

    @property
    def total(self) -> int:
        return self.units[-1].end if self.units else 0

    @property
    def marked(self) -> frozenset[int]:
        """The positions of the client's breakpoints."""
        return frozenset(mark.unit for mark in self.marks)


def flatten(body: Mapping[str, Any]) -> Prompt | None:
    """The prompt of ``body`` as units, or None when it is not shaped as the API wants."""
    prompt = Prompt()
    running = 0
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return None
        running += TOOLS_OVERHEAD if tools else 0
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return None
            running += estimate_tool_tokens(tool)
            # A deferred tool is not in the prompt until searched for: no prefix ends there.
            cacheable = not tool.get("defer_loading")
            _add(prompt, Unit("tools", i, None, running, cacheable), tool.get("cache_control"))
    system = body.get("system")
    if isinstance(system, str):
        running += estimate_text_tokens(system)
        prompt.units.append(Unit("system", 0, None, running, bool(system.strip())))
    elif isinstance(system, list):
        for j, block in enumerate(system):
            if not _shaped(block):
                return None
            running += estimate_block_tokens(block)
            unit = Unit("system", j, None, running, _cacheable(block))
            _add(prompt, unit, block.get("cache_control"))
    elif system is not None:
        return None
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return None
        role = message.get("role")
        if not isinstance(role, str):
            return None
        prompt.roles.append(role)
        running += MESSAGE_OVERHEAD
        if not _message_units(prompt, i, role in _ROLES, message.get("content"), running):
            return None
        running = prompt.units[-1].end
    return prompt


def _message_units(prompt: Prompt, i: int, roled: bool, content: Any, running: int) -> bool:
    if isinstance(content, str):
        running += estimate_text_tokens(content)
        prompt.units.append(Unit("messages", i, None, running, roled and bool(content.strip())))
        return True
    if not isinstance(content, list):
        return False
    if not content:  # one position all the same, as the cache counts it
        prompt.units.append(Unit("messages", i, None, running, False))
    for j, block in enumerate(content):
        if not _shaped(block):
            return False
        running += estimate_block_tokens(block)
        unit = Unit("messages", i, j, running, roled and _cacheable(block))
        # Blocks nested in this one (a tool result's, a search result's, a document's
        # content) may carry breakpoints, each counted by the API: they are the
        # client's at this position, before the block's own (in prompt order).
        for marker in inner_marks(block):
            _mark(prompt, len(prompt.units), marker)
        _add(prompt, unit, block.get("cache_control"))
    return True


def _shaped(block: Any) -> bool:
    """A block the walk can read: an object whose ``type`` is a string (a list or an
    object there is for the API to refuse; looked up in a set, it would raise)."""
    return isinstance(block, dict) and isinstance(block.get("type"), str)


def _cacheable(block: dict[str, Any]) -> bool:
    kind = block.get("type")
    if kind not in CACHEABLE_BLOCKS:
        return False
    if kind == "text":
        text = block.get("text")
        return isinstance(text, str) and bool(text.strip())
    return True


def _add(prompt: Prompt, unit: Unit, marker: Any) -> None:
    """Append ``unit``, and the client's breakpoint on it when ``marker`` is one."""
    if marker is not None:
        _mark(prompt, len(prompt.units), marker)
    prompt.units.append(unit)


def _mark(prompt: Prompt, unit: int, marker: Any) -> None:
    ttl = marker.get("ttl", "5m") if isinstance(marker, dict) else None
    if ttl not in ("5m", "1h"):
        prompt.valid_marks = False  # the API answers it: the gateway does not guess
        ttl = "5m"
    prompt.marks.append(Mark(unit, ttl))
