from __future__ import annotations

from claude_proxy.tenancy import estimate_input_tokens


def test_latin_text_is_about_four_characters_per_token() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 4000}]}
    assert 1000 <= estimate_input_tokens(body) <= 1010


def test_cjk_text_is_about_one_character_per_token() -> None:
    body = {"messages": [{"role": "user", "content": "漢字" * 500}]}
    assert 1000 <= estimate_input_tokens(body) <= 1010


def test_system_tools_and_blocks_are_counted() -> None:
    base = {"messages": [{"role": "user", "content": "hi"}]}
    with_all = {
        "system": [{"type": "text", "text": "s" * 400}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {}}],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"q": "y" * 400}}
                ],
            },
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    }
    assert estimate_input_tokens(base) < 10
    assert estimate_input_tokens(with_all) > 100 + 1600 + 100 + 350


def test_malformed_bodies_do_not_raise() -> None:
    assert estimate_input_tokens({}) == 1
    assert estimate_input_tokens({"messages": "nope", "system": 3, "tools": {}}) == 1
