from __future__ import annotations

import random

import pytest

from claude_proxy.config import RetrySettings
from claude_proxy.upstream.retry import RetryPolicy, retry_after_seconds


def test_exponential_backoff_with_ten_percent_jitter_and_cap() -> None:
    policy = RetryPolicy(RetrySettings(base_delay=0.5, max_delay=60, jitter=0.1))
    rng = random.Random(1)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0), (30, 60.0)]:
        delays = [policy.backoff(retry, rng) for _ in range(200)]
        assert min(delays) >= ceiling
        assert max(delays) <= ceiling * 1.1
        assert max(delays) > ceiling * 1.05  # the jitter is really there


def test_full_jitter_spreads_over_zero_to_ceiling() -> None:
    policy = RetryPolicy(RetrySettings(strategy="full_jitter", base_delay=1, max_delay=8))
    delays = [policy.backoff(2, random.Random(i)) for i in range(500)]
    assert 0 <= min(delays) < 0.5
    assert 3.5 < max(delays) <= 4.0


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status: int) -> None:
    assert RetryPolicy(RetrySettings()).should_retry_status(status, {})


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not RetryPolicy(RetrySettings()).should_retry_status(status, {})


def test_x_should_retry_wins_over_the_status() -> None:
    policy = RetryPolicy(RetrySettings())
    assert not policy.should_retry_status(529, {"x-should-retry": "false"})
    assert policy.should_retry_status(400, {"x-should-retry": "true"})


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "0.25"}) == 0.25
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "garbage"}) is None
    assert retry_after_seconds({}) is None
    date = "Wed, 25 Nov 2026 12:00:10 GMT"
    now = 1795608000.0  # 2026-11-25T12:00:00Z
    assert retry_after_seconds({"retry-after": date}, now=now) == pytest.approx(10.0)


def test_upstream_advice_replaces_the_formula() -> None:
    policy = RetryPolicy(RetrySettings(base_delay=0.5))
    assert policy.delay(0, {"retry-after": "7"}, random.Random()) == 7.0
    assert 0.5 <= policy.delay(0, {}, random.Random()) <= 0.55
