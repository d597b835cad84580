"""Where automatic cache breakpoints go in one Messages request, and the body with them.

Most clients never mark a breakpoint, so each call pays for its whole prompt again. The
plan adds ``cache_control`` where a long prefix is stable, in this order of value:

1. the end of the prompt (the last block that may carry one): the whole request is
   written, and the next turn of the conversation, sent with this one as its history,
   reads it back (the API looks up to 20 blocks back from the next turn's end);
2. the end of the previous turn (the last block before the last assistant message),
   when it lies too far back for that look-back (``PREVIOUS_TURN_GAP`` blocks or more:
   a turn of many tool calls): it is where the previous request's end was written;
3. the last system block: shared by every conversation with these tools and system;
4. the last tool definition: shared even when the system prompt changes;
5. the block before the last one in the last message (a document before its
   question): the next question about the same document reads it.

Each only where its prefix reaches the model's minimum; as many as there are free slots
(four less the client's own), taken in this order.

The API's rules hold: at most four breakpoints counting the client's own, never where
the client has one (nor is one of theirs changed); a request with top-level
``cache_control`` (automatic caching) or whose own breakpoints the API would refuse is
left alone; only on a prefix that reaches the model's minimum (estimated, erring high:
a breakpoint on a prefix a little too short is silently ignored by the API, never
charged). TTLs: 1h entries must come before 5m ones, so one added before a client's 1h
breakpoint is 1h (it costs nothing more: the client's 1h write covers that prefix) and
one after a client's 5m breakpoint is 5m; elsewhere the configured TTL.

Extra breakpoints cost nothing: a write is charged once, from the longest prefix read
to the last breakpoint, whatever the number in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from claude_proxy.prompt_cache.prompt import Prompt, Unit, Where, flatten
from claude_proxy.prompt_cache.settings import Ttl

__all__ = ["MAX_BREAKPOINTS", "PREVIOUS_TURN_GAP", "Breakpoint", "Outcome", "Plan", "plan"]

MAX_BREAKPOINTS = 4
# The API looks back at most 20 blocks from a breakpoint for an earlier entry; a margin
# below that, since how it counts (from the breakpoint or before it) is not documented.
PREVIOUS_TURN_GAP = 16

Outcome = Literal["added", "short", "automatic", "full", "covered", "invalid"]
"""What the plan did: ``added`` breakpoints; none, because the prompt is ``short`` of the
model's minimum, uses ``automatic`` caching, has four breakpoints already (``full``),
has the client's own wherever one would go (``covered``), or is ``invalid`` (its shape
or its own breakpoints are for the API to refuse)."""


@dataclass(frozen=True, slots=True)
class Breakpoint:
    where: Where
    ttl: Ttl
    unit: int  # position in the prompt


@dataclass(frozen=True, slots=True)
class Plan:
    outcome: Outcome
    added: tuple[Breakpoint, ...] = ()
    body: dict[str, Any] | None = None  # the body with them (None: nothing added)


def plan(body: Mapping[str, Any], *, ttl: Ttl, min_tokens: int) -> Plan:
    """Where breakpoints go in ``body`` (not changed: the plan's body is a new one)."""
    if body.get("cache_control") is not None:
        return Plan("automatic")
    prompt = flatten(body, enough=min_tokens)  # ends past the minimum need no estimate
    if prompt is None or not prompt.valid_marks or not _ordered(m.ttl for m in prompt.marks):
        return Plan("invalid")
    if prompt.total < min_tokens:
        return Plan("short")
    free = MAX_BREAKPOINTS - len(prompt.marks)
    if free <= 0:
        return Plan("full")
    candidates = [
        (where, unit) for where, unit in _candidates(prompt) if prompt.units[unit].end >= min_tokens
    ]
    if not candidates:
        return Plan("short")
    chosen: list[tuple[Where, int]] = []
    for where, unit in candidates:
        if unit not in prompt.marked and all(unit != seen for _, seen in chosen):
            chosen.append((where, unit))
    if not chosen:
        return Plan("covered")
    added = tuple(
        Breakpoint(where, _ttl_at(prompt, unit, ttl), unit)
        for where, unit in sorted(chosen[:free], key=lambda pair: pair[1])
    )
    return Plan("added", added, _marked_body(body, prompt.units, added))


def _candidates(prompt: Prompt) -> list[tuple[Where, int]]:
    """Cacheable positions in order of value (see the module docstring)."""
    units = prompt.units
    found: list[tuple[Where, int]] = []
    end = _last(units, lambda u: u.where == "messages")
    if end is not None:
        found.append(("messages", end))
        previous = _previous_turn_end(prompt)
        if previous is not None and end - previous >= PREVIOUS_TURN_GAP:
            found.append(("messages", previous))
    system = _last(units, lambda u: u.where == "system", before=prompt.system_end)
    if system is not None:
        found.append(("system", system))
    tools = _last(units, lambda u: u.where == "tools", before=prompt.tools_end)
    if tools is not None:
        found.append(("tools", tools))
    if end is not None:
        last = units[end].index
        context = _last(units, lambda u: u.where == "messages" and u.index == last, before=end)
        if context is not None:
            found.append(("messages", context))
    return found


def _previous_turn_end(prompt: Prompt) -> int | None:
    """The last cacheable unit before the last assistant message that is not the
    request's last message (a prefill is this turn's own)."""
    roles = prompt.roles
    turn = next(
        (i for i in range(len(roles) - 2, -1, -1) if roles[i] == "assistant"),
        None,
    )
    if turn is None:
        return None
    return _last(prompt.units, lambda u: u.where == "messages" and u.index < turn)


def _last(
    units: list[Unit], wanted: Callable[[Unit], bool], before: int | None = None
) -> int | None:
    """The position of the last cacheable unit ``wanted`` accepts (before ``before``)."""
    for position in range(len(units) - 1 if before is None else before - 1, -1, -1):
        unit = units[position]
        if unit.cacheable and wanted(unit):
            return position
    return None


def _ttl_at(prompt: Prompt, unit: int, ttl: Ttl) -> Ttl:
    if any(mark.ttl == "1h" and mark.unit > unit for mark in prompt.marks):
        return "1h"
    if any(mark.ttl == "5m" and mark.unit < unit for mark in prompt.marks):
        return "5m"
    return ttl


def _ordered(ttls: Any) -> bool:
    """Whether no 1h breakpoint comes after a 5m one (the API refuses that)."""
    seen_5m = False
    for ttl in ttls:
        if ttl == "5m":
            seen_5m = True
        elif seen_5m:
            return False
    return True


def _marker(ttl: Ttl) -> dict[str, str]:
    # 5m is the API's default: no ttl field, as every API version and SDK writes it.
    return {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": "1h"}


def _marked_body(
    body: Mapping[str, Any], units: list[Unit], added: tuple[Breakpoint, ...]
) -> dict[str, Any]:
    """A copy of ``body`` with the breakpoints; only what holds one is copied, and a
    string system or content becomes one text block (the same prompt to the API)."""
    new = dict(body)
    messages: dict[int, dict[str, Any]] = {}
    for point in added:
        unit = units[point.unit]
        marker = _marker(point.ttl)
        if unit.where == "tools":
            tools = new["tools"] = list(new["tools"])
            tools[unit.index] = {**tools[unit.index], "cache_control": marker}
        elif unit.where == "system":
            system = new["system"]
            if isinstance(system, str):
                new["system"] = [{"type": "text", "text": system, "cache_control": marker}]
            else:
                blocks = new["system"] = list(system)
                blocks[unit.index] = {**blocks[unit.index], "cache_control": marker}
        else:
            message = messages.get(unit.index)
            if message is None:
                message = messages[unit.index] = dict(new["messages"][unit.index])
            content = message["content"]
            if isinstance(content, str):
                message["content"] = [{"type": "text", "text": content, "cache_control": marker}]
            else:
                blocks = message["content"] = list(content)
                blocks[unit.block or 0] = {**blocks[unit.block or 0], "cache_control": marker}
    if messages:
        new["messages"] = [messages.get(i, m) for i, m in enumerate(new["messages"])]
    return new
