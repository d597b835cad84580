"""The client's ``cache_control`` breakpoints in a request, nested ones too.

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

__all__ = ["MAX_DEPTH", "inner_marks"]

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
                found.extend(inner_marks(inner, depth + 1))
                if inner.get("cache_control") is not None:
                    found.append(inner["cache_control"])
    return found
