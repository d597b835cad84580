from __future__ import annotations

from claude_proxy.config import BreakerSettings
from claude_proxy.upstream.breaker import BreakerState, CircuitBreaker
from tests.helpers import Clock


def breaker(clock: Clock, **fields: float) -> CircuitBreaker:
    settings = {"failure_rate": 0.5, "window": 10.0, "min_requests": 4, "open_seconds": 10.0}
    return CircuitBreaker(BreakerSettings(**{**settings, **fields}), clock)  # type: ignore[arg-type]


def test_opens_on_a_high_failure_rate_once_enough_requests_were_seen() -> None:
    b = breaker(Clock(0.0))
    b.on_failure()
    b.on_failure()
    b.on_failure()
    assert b.state is BreakerState.CLOSED  # 3 < min_requests
    b.on_failure()
    assert b.state is BreakerState.OPEN
    assert not b.allows_request()


def test_a_steady_low_error_rate_never_opens_it() -> None:
    b = breaker(Clock(0.0))
    for i in range(1000):  # 20 % failures, in runs of up to four
        if i % 20 >= 16:
            b.on_failure()
        else:
            b.on_success()
    assert b.state is BreakerState.CLOSED
    assert b.times_opened == 0


def test_old_failures_slide_out_of_the_window() -> None:
    clock = Clock(0.0)
    b = breaker(clock)
    for _ in range(3):
        b.on_failure()
    clock.now = 11
    b.on_failure()
    assert b.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_then_closes_on_success() -> None:
    clock = Clock(0.0)
    b = breaker(clock, min_requests=1)
    b.on_failure()
    clock.now = 9.9
    assert not b.allows_request()
    assert b.seconds_until_probe() > 0
    clock.now = 10.0
    assert b.state is BreakerState.HALF_OPEN
    assert b.allows_request()
    b.on_attempt()
    assert not b.allows_request()  # only one probe at a time
    b.on_success()
    assert b.state is BreakerState.CLOSED
    assert b.allows_request()


def test_a_failed_probe_opens_it_again() -> None:
    clock = Clock(0.0)
    b = breaker(clock, min_requests=1)
    b.on_failure()
    clock.now = 10
    b.on_attempt()
    b.on_failure()
    assert b.state is BreakerState.OPEN
    assert b.times_opened == 2
    clock.now = 15
    assert not b.allows_request()


def test_an_abandoned_probe_frees_the_probe_slot() -> None:
    clock = Clock(0.0)
    b = breaker(clock, min_requests=1, open_seconds=1)
    b.on_failure()
    clock.now = 2
    b.on_attempt()
    b.on_abandoned()
    assert b.allows_request()
