"""A circuit breaker per deployment: closed -> open -> half-open probe -> closed.

It opens when, over the last ``window`` seconds, at least ``min_requests``
attempts were made and at least ``failure_rate`` of them failed. After
``open_seconds`` one probe is let through (half-open): its success closes the
breaker, its failure opens it again. Rate limiting (429) is not a failure here:
it is the deployment asking for a pause, handled by the router's cooldown.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from claude_proxy.config import BreakerSettings
from claude_proxy.upstream.window import SlidingCounts

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._outcomes = SlidingCounts(settings.window, clock)  # [attempts, failures]
        self._opened_at = 0.0
        self._probing = False
        self._state = BreakerState.CLOSED
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self._settings.open_seconds
        ):
            self._state = BreakerState.HALF_OPEN
            self._probing = False
        return self._state

    def seconds_until_probe(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(self._settings.open_seconds - (self._clock() - self._opened_at), 0.0)

    def allows_request(self) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and not self._probing

    def on_attempt(self) -> None:
        """An attempt is starting; in half-open it is the one probe."""
        if self.state is BreakerState.HALF_OPEN:
            self._probing = True

    def on_abandoned(self) -> None:
        """The attempt ended without a verdict (the client left): let another probe."""
        self._probing = False

    def on_success(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._outcomes.clear()
        self._probing = False
        self._state = BreakerState.CLOSED
        self._outcomes.add(1, 0)

    def on_failure(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._outcomes.add(1, 1)
        attempts, failures = self._outcomes.totals()
        if (
            self._state is BreakerState.CLOSED
            and attempts >= self._settings.min_requests
            and failures >= self._settings.failure_rate * attempts
        ):
            self._open()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probing = False
        self.times_opened += 1
