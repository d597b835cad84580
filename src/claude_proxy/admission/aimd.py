"""The adaptive upstream window: multiplicative decrease on 429/529, additive increase."""

from __future__ import annotations

from claude_proxy.tenancy import AdmissionSettings

__all__ = ["CONGESTION_STATUSES", "AimdWindow"]

CONGESTION_STATUSES = frozenset({429, 529})


class AimdWindow:
    """In-process AIMD state; the Redis backend runs the same rules in Lua."""

    __slots__ = (
        "_cooldown",
        "_decreased_at",
        "_factor",
        "_step",
        "maximum",
        "minimum",
        "size",
        "successes",
    )

    def __init__(self, settings: AdmissionSettings) -> None:
        self.maximum = settings.upstream_max_concurrent
        self.minimum = settings.window_min
        self.size = self.maximum
        self.successes = 0
        self._factor = settings.decrease_factor
        self._step = settings.increase_step
        self._cooldown = settings.decrease_cooldown
        self._decreased_at = float("-inf")

    def on_status(self, status: int, now: float) -> bool:
        """Apply one upstream answer; True when the window grew (waiters may proceed)."""
        if status in CONGESTION_STATUSES:
            if now - self._decreased_at >= self._cooldown:
                self.size = max(self.minimum, int(self.size * self._factor))
                self._decreased_at = now
            self.successes = 0
            return False
        if not 200 <= status < 400:
            return False
        self.successes += 1
        if self.successes < self.size or self.size >= self.maximum:
            return False
        self.successes = 0
        self.size = min(self.maximum, self.size + self._step)
        return True
