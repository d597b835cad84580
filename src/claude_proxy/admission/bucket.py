"""A per-minute token bucket: refills continuously, as the API's own limits do."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``capacity`` per minute. The level may go negative when real usage exceeded the
    reservation; that debt is paid back by refilling before anything else is admitted."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / 60.0
        self.level = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> float:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
        return self.level

    def wait(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` is available (inf when it exceeds the capacity)."""
        if amount > self.capacity:
            return float("inf")
        level = self.refill(now)
        return 0.0 if level >= amount else (amount - level) / self.rate

    def give(self, amount: float) -> None:
        """Take (negative) or return (positive) tokens, never above the capacity."""
        self.level = min(self.capacity, self.level + amount)
