"""Input token accounting: the prompt as cache-ordered units, each counted by ``bpe``.

Rules (every count the simulator reports comes from ``bpe``, input and output alike):

* Text: ``bpe.text_tokens`` (a BPE-like tokenizer, rules in its docstring); generated
  output is the same tokens, so count_tokens, usage and streamed deltas agree.
* Fixed overheads: ``REQUEST_OVERHEAD`` once per request (never cached),
  ``MESSAGE_OVERHEAD`` per message (charged to the message's first block),
  ``BLOCK_OVERHEAD`` per content block, system block and tool definition.
* Images cost ``IMAGE_TOKENS``; base64/URL documents ``DOCUMENT_TOKENS``; other blocks
  (tool_use, tool_result, thinking, unknown) cost the text of their JSON payload.

The prompt is flattened into *units* (tools, then system blocks, then message blocks) in
the order the prompt cache sees them, so cached prefixes are sums over leading units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claude_proxy.jsonbytes import to_json
from claude_proxy.sim.blocks import nested_blocks
from claude_proxy.sim.bpe import text_tokens

__all__ = [
    "BLOCK_OVERHEAD",
    "MESSAGE_OVERHEAD",
    "REQUEST_OVERHEAD",
    "PromptUnit",
    "block_tokens",
    "canonical",
    "inner_markers",
    "prompt_units",
    "text_tokens",
    "total_input_tokens",
]

REQUEST_OVERHEAD = 3
MESSAGE_OVERHEAD = 3
BLOCK_OVERHEAD = 1
IMAGE_TOKENS = 1200
DOCUMENT_TOKENS = 1500


@dataclass(frozen=True, slots=True)
class PromptUnit:
    """One cacheable piece of the prompt: a tool, a system block or a message block."""

    key: bytes  # canonical bytes, cache_control removed, so markers never change identity
    tokens: int
    cache_control: dict[str, Any] | None
    # The markers of blocks nested in this one (a tool result's content...): each
    # counts toward the four, and acts as a breakpoint here (before the unit's own).
    inner: tuple[dict[str, Any], ...] = ()

    @property
    def markers(self) -> tuple[dict[str, Any], ...]:
        """Every marker on this unit, in document order."""
        own = () if self.cache_control is None else (self.cache_control,)
        return (*self.inner, *own)


def inner_markers(block: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return tuple(
        inner["cache_control"]
        for _, inner in nested_blocks(block)
        if inner.get("cache_control") is not None
    )


def canonical(value: Any) -> bytes:
    """Stable bytes for hashing: sorted keys, cache_control markers dropped."""
    return to_json(_strip_cache_control(value), sort_keys=True)


# Markers sit a few levels down at most; below this a value (a tool input nested as
# deep as JSON is read, 1,024 levels) is kept whole rather than walked by recursion.
_STRIP_DEPTH = 32


def _strip_cache_control(value: Any, depth: int = 0) -> Any:
    if depth >= _STRIP_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            k: _strip_cache_control(v, depth + 1) for k, v in value.items() if k != "cache_control"
        }
    if isinstance(value, list):
        return [_strip_cache_control(v, depth + 1) for v in value]
    return value


def block_tokens(block: dict[str, Any]) -> int:
    """Tokens of one content block, including its overhead."""
    kind = block.get("type")
    if kind == "text":
        cost = text_tokens(str(block.get("text", "")))
    elif kind == "image":
        cost = IMAGE_TOKENS
    elif kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            cost = text_tokens(str(source.get("data", "")))
        else:
            cost = DOCUMENT_TOKENS
    elif kind == "tool_use":
        cost = text_tokens(str(block.get("name", ""))) + text_tokens(
            to_json(block.get("input", {})).decode()
        )
    elif kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            cost = sum(block_tokens(b) for b in content if isinstance(b, dict))
        else:
            cost = text_tokens(str(content))
    elif kind == "thinking":
        cost = text_tokens(str(block.get("thinking", "")))
    else:
        cost = text_tokens(to_json(_strip_cache_control(block)).decode())
    return BLOCK_OVERHEAD + cost


def _tool_tokens(tool: dict[str, Any]) -> int:
    return BLOCK_OVERHEAD + text_tokens(canonical(tool).decode())


def prompt_units(
    tools: list[dict[str, Any]],
    system: list[dict[str, Any]],
    messages: list[tuple[str, list[dict[str, Any]]]],
) -> list[PromptUnit]:
    """Flatten a prompt into cache-ordered units: tools, system blocks, message blocks."""
    units = [PromptUnit(canonical(t), _tool_tokens(t), t.get("cache_control")) for t in tools]
    units.extend(
        PromptUnit(b"S" + canonical(b), block_tokens(b), b.get("cache_control")) for b in system
    )
    for role, blocks in messages:
        for i, block in enumerate(blocks):
            # The role and message boundary are part of the identity of a prefix.
            tag = (role[0] + ("0" if i == 0 else "")).encode()
            overhead = MESSAGE_OVERHEAD if i == 0 else 0
            units.append(
                PromptUnit(
                    tag + canonical(block),
                    block_tokens(block) + overhead,
                    block.get("cache_control"),
                    inner_markers(block),
                )
            )
        if not blocks:
            units.append(PromptUnit(role[0].encode() + b"0", MESSAGE_OVERHEAD, None))
    return units


def total_input_tokens(units: list[PromptUnit]) -> int:
    return REQUEST_OVERHEAD + sum(u.tokens for u in units)
