"""The minimum cacheable prefix by model name: families, dated ids, overrides, unknowns."""

from __future__ import annotations

import pytest

from claude_proxy.prompt_cache import min_cacheable_tokens
from claude_proxy.prompt_cache.minimums import UNKNOWN_MODEL_MIN_TOKENS
from claude_proxy.sim.models import active_models


@pytest.mark.parametrize(
    ("model", "tokens"),
    [
        ("claude-sonnet-4-5-20250929", 1024),
        ("claude-sonnet-4-5", 1024),
        ("claude-sonnet-4-6", 2048),  # sources disagree: the larger
        ("claude-opus-4-0", 1024),
        ("claude-opus-4-20250514", 1024),
        ("claude-opus-4-5-20251101", 4096),
        ("claude-haiku-4-5", 4096),
        ("claude-3-5-haiku-20241022", 2048),
        ("claude-opus-4-7", 2048),
        ("claude-opus-5", 512),
        ("claude-opus-5-5", 512),
        ("claude-sonnet-5-5", 1024),
        ("claude-opus-50", UNKNOWN_MODEL_MIN_TOKENS),  # a family is a whole name part
        ("my-fine-tune", UNKNOWN_MODEL_MIN_TOKENS),
        (None, UNKNOWN_MODEL_MIN_TOKENS),
    ],
)
def test_the_table(model: str | None, tokens: int) -> None:
    assert min_cacheable_tokens(model) == tokens


def test_overrides_win_first_match_first() -> None:
    overrides = {"claude-opus-4-5*": 2000, "claude-*": 3000}
    assert min_cacheable_tokens("claude-opus-4-5", overrides) == 2000
    assert min_cacheable_tokens("claude-sonnet-4-5", overrides) == 3000
    assert min_cacheable_tokens("my-fine-tune", {"my-*": 256}) == 256


def test_never_below_what_the_simulator_caches() -> None:
    """A breakpoint the gateway adds is one the simulator would write (the table is
    never lower than the simulator's minimum, for every model it serves)."""
    for spec in active_models():
        assert min_cacheable_tokens(spec.id) >= spec.min_cacheable_tokens, spec.id
