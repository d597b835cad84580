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

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from claude_proxy.prompt_cache.marks import inner_marks
from claude_proxy.tokens.estimate import (
    BLOCK_OVERHEAD,
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


@dataclass(slots=True)  # never changed; not frozen: that makes one 4x slower, per block
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
    # Units before the system's, and before the messages': tools, then system, first.
    tools_end: int = 0
    system_end: int = 0
    valid_marks: bool = True  # every mark of the client's is one the API takes

    @property
    def total(self) -> int:
        return self.units[-1].end if self.units else 0

    @property
    def marked(self) -> frozenset[int]:
        """The positions of the client's breakpoints."""
        return frozenset(mark.unit for mark in self.marks)


class _Running:
    """The estimated tokens of the prompt so far, counted until they reach ``enough``.

    Past that, a unit's end is only ever compared with thresholds it has passed, so
    what follows is not estimated (a long conversation or a long text costs its walk,
    not its estimate). The estimator counts at least a token per three characters:
    a text that long for the room left reaches ``enough`` whatever it holds."""

    __slots__ = ("enough", "total")

    def __init__(self, enough: int) -> None:
        self.enough = enough
        self.total = 0

    def add(self, tokens: int) -> int:
        self.total += tokens
        return self.total

    def text(self, text: str) -> int:
        room = self.enough - self.total
        if room <= 0:
            return self.total
        return self.add(room if len(text) >= 3 * room else estimate_text_tokens(text))

    def block(self, block: dict[str, Any]) -> int:
        if self.total >= self.enough:
            return self.total
        text = block.get("text")
        if block.get("type") == "text" and isinstance(text, str):  # as the estimator counts it
            self.text(text)
            return self.add(BLOCK_OVERHEAD)
        return self.add(estimate_block_tokens(block))

    def tool(self, tool: dict[str, Any]) -> int:
        if self.total >= self.enough:
            return self.total
        return self.add(estimate_tool_tokens(tool))


def flatten(body: Mapping[str, Any], enough: int | None = None) -> Prompt | None:
    """The prompt of ``body`` as units, or None when it is not shaped as the API wants.

    ``enough``: units' ends are exact up to this many tokens; past it they are at
    least this many (the plan compares them with the model's minimum, no more)."""
    prompt = Prompt()
    running = _Running(enough if enough is not None else sys.maxsize)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return None
        running.add(TOOLS_OVERHEAD if tools else 0)
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return None
            end = running.tool(tool)
            # A deferred tool is not in the prompt until searched for: no prefix ends there.
            cacheable = not tool.get("defer_loading")
            _add(prompt, Unit("tools", i, None, end, cacheable), tool.get("cache_control"))
    prompt.tools_end = len(prompt.units)
    system = body.get("system")
    if isinstance(system, str):
        end = running.text(system)
        prompt.units.append(Unit("system", 0, None, end, _visible(system)))
    elif isinstance(system, list):
        for j, block in enumerate(system):
            if not _shaped(block):
                return None
            unit = Unit("system", j, None, running.block(block), _cacheable(block))
            _add(prompt, unit, block.get("cache_control"))
    elif system is not None:
        return None
    prompt.system_end = len(prompt.units)
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
        running.add(MESSAGE_OVERHEAD)
        if not _message_units(prompt, i, role in _ROLES, message.get("content"), running):
            return None
    return prompt


def _message_units(prompt: Prompt, i: int, roled: bool, content: Any, running: _Running) -> bool:
    if isinstance(content, str):
        end = running.text(content)
        prompt.units.append(Unit("messages", i, None, end, roled and _visible(content)))
        return True
    if not isinstance(content, list):
        return False
    if not content:  # one position all the same, as the cache counts it
        prompt.units.append(Unit("messages", i, None, running.total, False))
    units = prompt.units
    for j, block in enumerate(content):
        # The loop over every block of every message: the helpers inlined.
        if not _shaped(block):
            return False
        end = running.total if running.total >= running.enough else running.block(block)
        cacheable = roled and _cacheable(block)
        if "content" in block or "source" in block:
            # Blocks nested in this one (a tool result's, a search result's, a
            # document's content) may carry breakpoints, each counted by the API:
            # they are the client's at this position, before the block's own.
            for marker in inner_marks(block):
                _mark(prompt, len(units), marker)
        if (marker := block.get("cache_control")) is not None:
            _mark(prompt, len(units), marker)
        units.append(Unit("messages", i, j, end, cacheable))
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
        return isinstance(text, str) and _visible(text)
    return True


def _visible(text: str) -> bool:
    """Not empty nor only whitespace (the API takes no breakpoint on such a text);
    ``isspace`` stops at the first other character, where ``strip`` copies."""
    return bool(text) and not text.isspace()


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
