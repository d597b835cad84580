"""Which upstream failures are worth another attempt, and how long to wait first.

Pure functions of the response and the attempt number: no I/O, no clock, so the
policy is tested exhaustively without sleeping. The upstream's own advice wins
over the formula: ``x-should-retry`` decides whether, ``retry-after-ms`` /
``retry-after`` decide when.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from claude_proxy.config import RetrySettings

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "retry_after_seconds"]

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    settings: RetrySettings

    def should_retry_status(self, status: int, headers: Mapping[str, str]) -> bool:
        advice = headers.get("x-should-retry")
        if advice == "true":
            return True
        if advice == "false":
            return False
        return status in RETRYABLE_STATUSES

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Seconds to wait before retry ``retry_number`` (0 for the first retry)."""
        ceiling = min(self.settings.base_delay * 2.0**retry_number, self.settings.max_delay)
        if self.settings.strategy == "full_jitter":
            return rng.random() * ceiling
        return ceiling * (1 + self.settings.jitter * rng.random())

    def delay(
        self, retry_number: int, headers: Mapping[str, str] | None, rng: random.Random
    ) -> float:
        advised = retry_after_seconds(headers) if headers is not None else None
        return advised if advised is not None else self.backoff(retry_number, rng)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait the upstream asked for, from ``retry-after-ms`` or ``retry-after``."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1
        if value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if _looks_like_date(raw) else None
        if parsed is None:
            return None
        value = parsed.timestamp() - (time.time() if now is None else now)
    return max(value, 0.0)


def _looks_like_date(raw: str) -> bool:
    try:
        email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return False
    return True
