"""Input accounting: prompt arithmetic, and count_tokens == the input total usage reports."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from claude_proxy.sim.tokens import (
    BLOCK_OVERHEAD,
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    block_tokens,
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


def test_simple_prompt_arithmetic() -> None:
    units = prompt_units(
        [],
        [{"type": "text", "text": "Hello, world!"}],  # Hello , _world !
        [("user", [{"type": "text", "text": "We have 2026 of them"}])],  # We _have _202 6 _of _them
    )
    expected = REQUEST_OVERHEAD + (BLOCK_OVERHEAD + 4) + (MESSAGE_OVERHEAD + BLOCK_OVERHEAD + 6)
    assert total_input_tokens(units) == expected


def test_input_is_counted_with_the_tokenizer() -> None:
    """A long rare word costs several tokens in a prompt, not one per four characters."""
    block = {"type": "text", "text": "internationalization"}
    assert block_tokens(block) == BLOCK_OVERHEAD + text_tokens("internationalization")
    assert text_tokens("internationalization") >= 5


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
