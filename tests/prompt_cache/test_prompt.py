"""The prompt as the plan reads it: positions exact, token ends estimated only as far
as the plan compares them (the model's minimum), so a huge body is walked, not counted."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from claude_proxy.prompt_cache import min_cacheable_tokens, plan
from claude_proxy.prompt_cache.prompt import flatten
from claude_proxy.tokens import estimate_input_tokens

from .test_accepted import generated


@pytest.mark.parametrize("enough", [1, 1024, 4096])
def test_ends_are_exact_up_to_the_minimum_and_past_it_after(enough: int) -> None:
    for seed in range(150):
        request, _ = generated(seed)
        exact, bounded = flatten(request), flatten(request, enough=enough)
        assert exact is not None and bounded is not None
        assert [(u.where, u.index, u.block, u.cacheable) for u in bounded.units] == [
            (u.where, u.index, u.block, u.cacheable) for u in exact.units
        ]
        assert bounded.marks == exact.marks and bounded.roles == exact.roles
        for ours, theirs in zip(bounded.units, exact.units, strict=True):
            assert ours.end == theirs.end if theirs.end < enough else ours.end >= enough


def _best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def test_planning_a_huge_prompt_costs_far_less_than_estimating_it() -> None:
    """Planning runs on the event loop: a 6 MB question is not counted character by
    character once it is known to pass the minimum (it was: more than one estimate)."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "lorem ipsum dolor sit amet, " * 220_000}],
    }
    minimum = min_cacheable_tokens("claude-sonnet-4-5")
    assert plan(body, ttl="5m", min_tokens=minimum).outcome == "added"
    planning = _best_of(3, lambda: plan(body, ttl="5m", min_tokens=minimum))
    estimating = _best_of(3, lambda: estimate_input_tokens(body))
    assert planning * 10 < estimating, (planning, estimating)
