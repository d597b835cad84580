"""A retry budget: retries may be at most a fraction of recent requests.

Finagle-style: over a sliding window, retries are allowed while
``retries < budget * requests + min_per_second * window``. The floor keeps a
quiet gateway able to retry at all; the fraction caps the amplification an
outage can cause (at the default 20 %, about 1.2 upstream calls per request).
"""

from __future__ import annotations

from collections.abc import Callable

from claude_proxy.upstream.window import SlidingCounts

__all__ = ["RetryBudget"]


class RetryBudget:
    def __init__(
        self,
        fraction: float,
        window: float,
        min_per_second: float,
        clock: Callable[[], float],
    ) -> None:
        self._fraction = fraction
        self._floor = min_per_second * window
        self._counts = SlidingCounts(window, clock)  # [requests, retries]
        self.denied = 0

    def record_request(self) -> None:
        self._counts.add(1, 0)

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        requests, retries = self._counts.totals()
        if retries + 1 > self._fraction * requests + self._floor:
            self.denied += 1
            return False
        self._counts.add(0, 1)
        return True
