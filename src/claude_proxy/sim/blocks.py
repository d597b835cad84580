"""Validation of content blocks, system blocks and cache_control markers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Any

from claude_proxy.errors import InvalidRequest

__all__ = ["check_blocks", "check_cache_control", "check_text_blocks", "nested_blocks"]

# Required string/dict fields per block type; extra fields are passed through untouched.
_REQUIRED: dict[str, tuple[tuple[str, type], ...]] = {
    "text": (("text", str),),
    "image": (("source", dict),),
    "document": (("source", dict),),
    "search_result": (("source", str), ("title", str), ("content", list)),
    "tool_result": (("tool_use_id", str),),
    "tool_use": (("id", str), ("name", str), ("input", dict)),
    "thinking": (("thinking", str), ("signature", str)),
    "redacted_thinking": (("data", str),),
    "server_tool_use": (("id", str), ("name", str), ("input", dict)),
    "web_search_tool_result": (("tool_use_id", str),),
    "web_fetch_tool_result": (("tool_use_id", str),),
    "code_execution_tool_result": (("tool_use_id", str),),
    "mcp_tool_use": (("id", str), ("name", str)),
    "mcp_tool_result": (("tool_use_id", str),),
    "container_upload": (("file_id", str),),
}
_USER_ONLY = frozenset({"image", "tool_result", "search_result", "container_upload"})
_ASSISTANT_ONLY = frozenset(
    {"tool_use", "thinking", "redacted_thinking", "server_tool_use", "mcp_tool_use"}
)
_UNCACHEABLE = frozenset({"thinking", "redacted_thinking"})
# Blocks nest a level or two (a search result in a tool result); a walk goes no deeper.
_NESTING = 8
_TAGS = ", ".join(f"'{t}'" for t in _REQUIRED)
_TYPE_NAMES: dict[type, str] = {
    str: "a valid string",
    dict: "a valid dictionary",
    list: "a valid list",
}


def check_cache_control(raw: Any, path: str) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{path}: Input should be a valid dictionary or object")
    if raw.get("type") != "ephemeral":
        raise InvalidRequest(f"{path}.type: Input should be 'ephemeral'")
    if raw.get("ttl", "5m") not in ("5m", "1h"):
        raise InvalidRequest(f"{path}.ttl: Input should be '5m' or '1h'")


def nested_blocks(block: dict[str, Any], depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """The blocks nested in ``block`` (a tool result's or a search result's ``content``,
    a document's ``source.content``), each after those nested in it, in document
    order; with the path from ``block``."""
    if depth >= _NESTING:
        return
    lists = [("content", block.get("content"))]
    source = block.get("source")
    if isinstance(source, dict):
        lists.append(("source.content", source.get("content")))
    for where, blocks in lists:
        if not isinstance(blocks, list):
            continue
        for k, inner in enumerate(blocks):
            if isinstance(inner, dict):
                for path, deeper in nested_blocks(inner, depth + 1):
                    yield f"{where}.{k}.{path}", deeper
                yield f"{where}.{k}", inner


def _check_block(block: Any, path: str) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise InvalidRequest(f"{path}: Input should be a valid dictionary or object")
    kind = block.get("type")
    if kind is None:
        raise InvalidRequest(f"{path}.type: Field required")
    # A list or an object as the tag is no tag either (and cannot be looked up in a dict).
    if not isinstance(kind, str) or kind not in _REQUIRED:
        raise InvalidRequest(
            f"{path}.type: Input tag '{kind}' found using 'type' does not match any of the "
            f"expected tags: {_TAGS}"
        )
    for field, kind_of in _REQUIRED[kind]:
        if field not in block:
            raise InvalidRequest(f"{path}.{kind}.{field}: Field required")
        if not isinstance(block[field], kind_of):
            raise InvalidRequest(f"{path}.{kind}.{field}: Input should be {_TYPE_NAMES[kind_of]}")
    if kind in _UNCACHEABLE and "cache_control" in block:
        # The API's thinking block params have no cache_control field: they are cached
        # as part of the turn around them, never marked themselves.
        raise InvalidRequest(f"{path}.{kind}.cache_control: Extra inputs are not permitted")
    check_cache_control(block.get("cache_control"), f"{path}.{kind}.cache_control")
    for where, inner in nested_blocks(block):
        check_cache_control(inner.get("cache_control"), f"{path}.{kind}.{where}.cache_control")
    return block


def check_blocks(raw: list[Any], path: str, role: str, version: str) -> list[dict[str, Any]]:
    """Validate the content list of one message."""
    out: list[dict[str, Any]] = []
    for j, item in enumerate(raw):
        block = _check_block(item, f"{path}.{j}")
        kind = block["type"]
        if role == "assistant" and kind in _USER_ONLY:
            raise InvalidRequest(f"{path}.{j}: `{kind}` blocks are only allowed in user messages")
        if role == "user" and kind in _ASSISTANT_ONLY:
            raise InvalidRequest(
                f"{path}.{j}: `{kind}` blocks are only allowed in assistant messages"
            )
        if version == "2026-10-21":
            if role == "assistant" and kind == "document":
                raise InvalidRequest(
                    f"{path}.{j}: `document` blocks are not allowed in assistant messages"
                )
            if role == "user" and kind == "text" and block.get("citations"):
                raise InvalidRequest(
                    f"{path}.{j}.text.citations: citations are not allowed on user text blocks"
                )
        if kind == "text" and not block["text"]:
            raise InvalidRequest(f"{path}.{j}.text.text: text content blocks must be non-empty")
        if kind == "image":
            _check_image_source(block["source"], f"{path}.{j}.image.source")
        out.append(block)
    return out


_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_IMAGE_TYPE_NAMES = "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
_IMAGE_SOURCES: dict[str, str] = {"base64": "data", "url": "url", "file": "file_id"}


def _check_image_source(source: dict[str, Any], path: str) -> None:
    kind = source.get("type")
    if kind not in _IMAGE_SOURCES:
        raise InvalidRequest(f"{path}.type: Input should be 'base64', 'url' or 'file'")
    field = _IMAGE_SOURCES[kind]
    if not isinstance(source.get(field), str):
        raise InvalidRequest(f"{path}.{kind}.{field}: Field required")
    if kind != "base64":
        return
    if source.get("media_type") not in _IMAGE_TYPES:
        raise InvalidRequest(f"{path}.base64.media_type: Input should be {_IMAGE_TYPE_NAMES}")
    try:
        base64.b64decode(source["data"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{path}.base64.data: The image data is not valid base64.") from None


def check_text_blocks(raw: list[Any], path: str) -> list[dict[str, Any]]:
    """Validate `system` given as a list: text blocks only."""
    out: list[dict[str, Any]] = []
    for j, item in enumerate(raw):
        block = _check_block(item, f"{path}.{j}")
        if block["type"] != "text":
            raise InvalidRequest(f"{path}.{j}.type: Input should be 'text'")
        if block["text"]:
            out.append(block)
    return out
