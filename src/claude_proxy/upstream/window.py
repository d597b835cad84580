"""Pairs of counts over a sliding time window, kept in ten rotating buckets."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["SlidingCounts"]

_BUCKETS = 10


class SlidingCounts:
    """Two counters (a, b) summed over the last ``window`` seconds, to a tenth of it."""

    __slots__ = ("_a", "_b", "_clock", "_epoch", "_span")

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._span = window / _BUCKETS
        self._a = [0] * _BUCKETS
        self._b = [0] * _BUCKETS
        self._epoch = math.floor(clock() / self._span)

    def add(self, a: int, b: int) -> None:
        slot = self._advance()
        self._a[slot] += a
        self._b[slot] += b

    def totals(self) -> tuple[int, int]:
        self._advance()
        return sum(self._a), sum(self._b)

    def clear(self) -> None:
        self._a = [0] * _BUCKETS
        self._b = [0] * _BUCKETS

    def _advance(self) -> int:
        bucket = math.floor(self._clock() / self._span)
        for step in range(1, min(bucket - self._epoch, _BUCKETS) + 1):
            # Buckets that slid out of the window start again from zero.
            index = (self._epoch + step) % _BUCKETS
            self._a[index] = 0
            self._b[index] = 0
        self._epoch = max(bucket, self._epoch)
        return bucket % _BUCKETS
