from __future__ import annotations

from claude_proxy.upstream.budget import RetryBudget
from tests.helpers import Clock


def test_retries_are_capped_at_a_fraction_of_requests() -> None:
    clock = Clock()
    budget = RetryBudget(fraction=0.2, window=10, min_per_second=0, clock=clock)
    for _ in range(100):
        budget.record_request()
    allowed = sum(budget.try_spend() for _ in range(50))
    assert allowed == 20
    assert budget.denied == 30


def test_the_floor_lets_a_quiet_gateway_retry() -> None:
    budget = RetryBudget(fraction=0.2, window=10, min_per_second=1, clock=Clock())
    budget.record_request()
    assert sum(budget.try_spend() for _ in range(20)) == 10  # 0.2 * 1 + 1/s * 10 s


def test_the_window_slides() -> None:
    clock = Clock()
    budget = RetryBudget(fraction=0.5, window=10, min_per_second=0, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert sum(budget.try_spend() for _ in range(10)) == 5
    clock.now += 11  # all of that traffic is now outside the window
    assert not budget.try_spend()
    budget.record_request()
    budget.record_request()
    assert budget.try_spend()
    assert not budget.try_spend()
