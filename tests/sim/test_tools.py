"""The simulator's tool rule on its own: which words name a tool."""

from __future__ import annotations

import pytest

from claude_proxy.sim.tools import mentions


@pytest.mark.parametrize(
    ("text", "tool", "called"),
    [
        ("What's the weather in Paris?", "get_weather", True),
        ("please call get_weather now", "get_weather", True),
        ("read notes.txt", "Read", True),
        ("Edit the README", "Edit", True),
        # A tool's name inside another word is no mention of it (Claude Code's Read, Edit).
        ("Ready to start?", "Read", False),
        ("Which Editor do you use?", "Edit", False),
        ("Tell me a story about a lighthouse.", "get_weather", False),
    ],
)
def test_a_tool_is_called_only_when_its_name_or_a_word_of_it_is_said(
    text: str, tool: str, called: bool
) -> None:
    assert mentions(text, tool) is called
