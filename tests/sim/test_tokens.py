"""The tokenizer: documented counts, and count_tokens == the input total usage reports."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from claude_proxy.sim.tokens import (
    BLOCK_OVERHEAD,
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    prompt_units,
    text_tokens,
    total_input_tokens,
)

from .conftest import MODEL

TOOL = {
    "name": "search",
    "description": "Search the web",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
}
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}


def test_text_tokens() -> None:
    assert [text_tokens(s) for s in ("", "a", "abcd", "abcde", "é" * 8)] == [0, 1, 1, 2, 2]


def test_simple_prompt_arithmetic() -> None:
    units = prompt_units(
        [], [{"type": "text", "text": "x" * 40}], [("user", [{"type": "text", "text": "y" * 8}])]
    )
    expected = REQUEST_OVERHEAD + (BLOCK_OVERHEAD + 10) + (MESSAGE_OVERHEAD + BLOCK_OVERHEAD + 2)
    assert total_input_tokens(units) == expected


REQUESTS: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": "Hello"}]},
    {"system": "You are terse.", "messages": [{"role": "user", "content": "Hi " * 50}]},
    {
        "tools": [TOOL],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, IMAGE]}],
    },
    {
        "system": [{"type": "text", "text": "a" * 300, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_01x", "name": "search", "input": {"q": "x"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01x", "content": "found it"}
                ],
            },
        ],
        "tools": [TOOL],
    },
]


@pytest.mark.parametrize("request_fields", REQUESTS)
async def test_count_equals_usage_total(
    client: anthropic.AsyncAnthropic, request_fields: dict[str, Any]
) -> None:
    counted = await client.messages.count_tokens(model=MODEL, **request_fields)
    message = await client.messages.create(model=MODEL, max_tokens=20, **request_fields)
    usage = message.usage
    total = (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )
    assert counted.input_tokens == total
