"""The 429 a tenant gets: retry-after plus anthropic-ratelimit-* headers for its limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from claude_proxy.errors import RateLimited

__all__ = ["LIMIT_NAMES", "LimitLevel", "rate_limited", "ratelimit_headers"]

# Header infix of each per-minute limit, in the order backends keep them.
LIMIT_NAMES = ("requests", "input-tokens", "output-tokens")


@dataclass(frozen=True, slots=True)
class LimitLevel:
    """One per-minute limit and how much of it is left right now."""

    name: str
    limit: int
    level: float


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(math.ceil(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ratelimit_headers(levels: list[LimitLevel], now: float) -> dict[str, str]:
    """``anthropic-ratelimit-<name>-{limit,remaining,reset}``; reset is when it is full."""
    headers: dict[str, str] = {}
    for item in levels:
        prefix = f"anthropic-ratelimit-{item.name}"
        missing = max(0.0, item.limit - item.level)
        headers[f"{prefix}-limit"] = str(item.limit)
        headers[f"{prefix}-remaining"] = str(max(0, math.floor(item.level)))
        headers[f"{prefix}-reset"] = _rfc3339(now + missing * 60.0 / item.limit)
    return headers


def rate_limited(
    tenant: str, reason: str, retry_after: float, levels: list[LimitLevel], now: float
) -> RateLimited:
    """A RateLimited error for ``tenant``; ``now`` is wall-clock (epoch) seconds."""
    seconds = 60 if math.isinf(retry_after) else max(1, math.ceil(retry_after))
    headers = {"retry-after": str(seconds), **ratelimit_headers(levels, now)}
    return RateLimited(f"tenant {tenant!r}: {reason}; retry after {seconds} s", headers=headers)
