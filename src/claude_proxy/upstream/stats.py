"""Counters of upstream activity, kept for the metrics endpoint to export."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["UpstreamStats"]


@dataclass(slots=True)
class UpstreamStats:
    # (deployment name, outcome) -> attempts; outcome is "ok", "http_<status>" or an error type.
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries: int = 0
    heals: int = 0
    unhealable: int = 0
    gave_up: Counter[str] = field(default_factory=Counter)
    budget_denied: int = 0
