"""The ``cache_control`` breakpoints in a request, nested ones too: found, and taken out.

The API counts every block that carries ``cache_control`` toward its four, a block
nested in another one too: a tool result's content, a search result's content, a
document whose source is content blocks. Only blocks carry breakpoints: a tool's
``input`` or ``input_schema`` is data, and a key named ``cache_control`` in it is the
client's data, never touched.

Blocks nest a level or two in any request the API takes (a search result in a tool
result); the walk stops at ``MAX_DEPTH`` rather than follow a body built to be deeper
(the API refuses that one anyway).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["MAX_DEPTH", "inner_marks", "unmarked_content", "unmarked_messages"]

MAX_DEPTH = 8


def _nested(block: dict[str, Any]) -> Iterator[tuple[str | None, list[Any]]]:
    """The lists of blocks inside ``block``: its ``content``, its ``source``'s
    ``content`` (key None: under ``source``)."""
    content = block.get("content")
    if isinstance(content, list):
        yield "content", content
    source = block.get("source")
    if isinstance(source, dict) and isinstance(source.get("content"), list):
        yield None, source["content"]


def inner_marks(block: dict[str, Any], depth: int = 0) -> list[Any]:
    """The ``cache_control`` of every block nested in ``block``, in document order
    (``block``'s own not included)."""
    found: list[Any] = []
    if depth >= MAX_DEPTH:
        return found
    for _, blocks in _nested(block):
        for inner in blocks:
            if isinstance(inner, dict):
                if "content" in inner or "source" in inner:  # most blocks hold none
                    found.extend(inner_marks(inner, depth + 1))
                if inner.get("cache_control") is not None:
                    found.append(inner["cache_control"])
    return found


def _unmarked_block(block: Any, depth: int) -> Any:
    """``block`` without any breakpoint, its nested blocks' too: ``block`` itself when
    it has none, else a copy of what holds one."""
    if not isinstance(block, dict) or depth > MAX_DEPTH:
        return block
    new: dict[str, Any] | None = None
    if "cache_control" in block:
        new = {key: value for key, value in block.items() if key != "cache_control"}
    for key, blocks in _nested(block):
        kept = _unmarked_list(blocks, depth + 1)
        if kept is blocks:
            continue
        new = dict(block) if new is None else new
        if key is None:
            new["source"] = {**block["source"], "content": kept}
        else:
            new[key] = kept
    return block if new is None else new


def _unmarked_list(blocks: list[Any], depth: int) -> list[Any]:
    kept = [_unmarked_block(block, depth) for block in blocks]
    if all(new is old for new, old in zip(kept, blocks, strict=True)):
        return blocks
    return kept


def unmarked_content(content: Any) -> Any:
    """A message's content, or a system, without breakpoints (a string has none)."""
    return _unmarked_list(content, 0) if isinstance(content, list) else content


def unmarked_messages(messages: list[Any]) -> list[Any]:
    """``messages`` with no breakpoint left in any block: the same list when there were
    none, else a copy of the messages that held one (the others shared)."""
    kept = []
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            content = unmarked_content(message["content"])
            if content is not message["content"]:
                message = {**message, "content": content}
        kept.append(message)
    if all(new is old for new, old in zip(kept, messages, strict=True)):
        return messages
    return kept
