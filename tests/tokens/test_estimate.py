"""The token estimator errs high against a BPE-like tokenizer, but not wildly."""

from __future__ import annotations

import random

import pytest

from claude_proxy.sim.bpe import text_tokens
from claude_proxy.sim.text import answer_pieces
from claude_proxy.tokens import estimate_input_tokens, estimate_text_tokens

CHINESE = "网关在生产环境中运行时，需要处理很长的文档、中途断开的流、重试和限流。" * 10


def fragments(text: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        size = rng.choice((5, 20, 80, 300, 1200))
        start = rng.randrange(0, max(1, len(text) - size))
        out.append(text[start : start + size])
    return out


def test_never_under_on_the_simulators_prose_at_any_cut() -> None:
    # What a broken stream leaves behind: any stretch of an English answer. The max_tokens
    # a heal may still use is computed from this estimate, so it must not fall short.
    prose = "".join("".join(answer_pieces(seed, 300)) for seed in range(20))
    for fragment in fragments(prose, 2000, seed=3):
        assert estimate_text_tokens(fragment) >= text_tokens(fragment), fragment


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("".join(answer_pieces(1, 2000)), 1.0, 1.4),
        (CHINESE, 1.0, 1.4),
        ("The answer (in short): 42, 17 and 2026." * 30, 1.0, 1.4),
    ],
)
def test_within_a_band_above_the_true_count(text: str, low: float, high: float) -> None:
    ratio = estimate_text_tokens(text) / text_tokens(text)
    assert low <= ratio <= high


def test_cjk_costs_more_per_character_than_latin() -> None:
    assert estimate_text_tokens("漢字" * 500) > estimate_text_tokens("ab" * 500)
    assert estimate_text_tokens("漢字" * 500) >= 1000


def test_empty_text_is_free() -> None:
    assert estimate_text_tokens("") == 0


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
