"""Prompt caching (API reference section 5): prefix entries with TTLs, and usage accounting.

A breakpoint is a unit carrying ``cache_control``, on itself or on a block nested in it
(a tool result's content...; each marked block counts toward the four), or the last unit,
for top-level automatic caching. Its entry key is a hash chained over the model and every
unit up to it, so matching is exact. Reads take the longest live prefix found by looking
back at most 20 units from each breakpoint; writes happen at each later breakpoint whose
prefix reaches the model's minimum cacheable length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from claude_proxy.errors import InvalidRequest
from claude_proxy.sim.tokens import PromptUnit, total_input_tokens

__all__ = ["MAX_BREAKPOINTS", "CacheUsage", "PromptCache"]

MAX_BREAKPOINTS = 4
LOOKBACK = 20


@dataclass(frozen=True, slots=True)
class CacheUsage:
    input_tokens: int  # not cached: after the last breakpoint, or below the minimum
    cache_read: int
    write_5m: int
    write_1h: int

    @property
    def cache_creation(self) -> int:
        return self.write_5m + self.write_1h

    @property
    def prefilled(self) -> int:
        """Tokens the model reads afresh: uncached ones and the ones written to the cache
        (a write is a full prefill; only a read skips it)."""
        return self.input_tokens + self.cache_creation

    @property
    def total(self) -> int:
        return self.input_tokens + self.cache_read + self.cache_creation

    def to_api(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.write_5m,
                "ephemeral_1h_input_tokens": self.write_1h,
            },
        }


@dataclass(slots=True)
class _Entry:
    expires_at: float
    ttl: float


class PromptCache:
    """In-memory prefix cache; one per simulator app."""

    def __init__(self, clock: Callable[[], float], ttl_5m: float, ttl_1h: float) -> None:
        self._clock = clock
        self._ttls = {"5m": ttl_5m, "1h": ttl_1h}
        self._entries: dict[bytes, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _alive(self, key: bytes, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[key]
            return None
        return entry

    def _sweep(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]

    def account(
        self,
        model_id: str,
        units: list[PromptUnit],
        automatic: dict[str, Any] | None,
        min_tokens: int,
    ) -> CacheUsage:
        """Look up and write this prompt's prefixes; return the usage split."""
        # Every block carrying cache_control counts, nested ones too; a unit's entry
        # takes the TTL of its last marker (its own, when it has one).
        found = [(i, str(m.get("ttl", "5m"))) for i, u in enumerate(units) for m in u.markers]
        marks: dict[int, str] = dict(found)
        if automatic is not None and units and (len(units) - 1) not in marks:
            found.append((len(units) - 1, str(automatic.get("ttl", "5m"))))
            marks[len(units) - 1] = found[-1][1]
        if len(found) > MAX_BREAKPOINTS:
            raise InvalidRequest(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(found)}."
            )
        ttls_in_order = [ttl for _, ttl in found]
        if "5m" in ttls_in_order and "1h" in ttls_in_order[ttls_in_order.index("5m") :]:
            raise InvalidRequest(
                "a ttl='1h' cache_control block must not come after a ttl='5m' block"
            )
        total = total_input_tokens(units)
        if not marks:
            return CacheUsage(total, 0, 0, 0)
        now = self._clock()
        if len(self._entries) > 10_000:
            self._sweep(now)
        keys, prefix_tokens = _chain(model_id, units)
        best = -1
        for mark in marks:
            for j in range(mark, max(-1, mark - LOOKBACK), -1):
                entry = self._alive(keys[j], now)
                if entry is not None:
                    entry.expires_at = now + entry.ttl  # a hit refreshes the TTL for free
                    best = max(best, j)
                    break
        read = prefix_tokens[best] if best >= 0 else 0
        written = {"5m": 0, "1h": 0}
        start = read
        for mark in sorted(marks):
            if mark <= best or prefix_tokens[mark] < min_tokens:
                continue
            ttl = marks[mark]
            self._entries[keys[mark]] = _Entry(now + self._ttls[ttl], self._ttls[ttl])
            written[ttl] += prefix_tokens[mark] - start
            start = prefix_tokens[mark]
        uncached = total - read - written["5m"] - written["1h"]
        return CacheUsage(uncached, read, written["5m"], written["1h"])


def _chain(model_id: str, units: list[PromptUnit]) -> tuple[list[bytes], list[int]]:
    """Chained prefix hashes and cumulative token counts, one per unit."""
    keys: list[bytes] = []
    tokens: list[int] = []
    digest = hashlib.sha256(model_id.encode()).digest()
    running = 0
    for unit in units:
        digest = hashlib.sha256(digest + unit.key).digest()
        running += unit.tokens
        keys.append(digest)
        tokens.append(running)
    return keys, tokens
