"""Counters of requests and injected faults, read by tests and benchmarks via /sim/stats."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Stats"]


@dataclass(slots=True)
class Stats:
    requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    output_tokens: int = 0

    def enter(self, endpoint: str) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, status: int | None) -> None:
        self.in_flight -= 1
        if status is not None:
            self.by_status[status] += 1

    def reset(self) -> None:
        """Zero the counters; requests still running stay counted as in flight."""
        running = self.in_flight
        self.requests = 0
        self.by_endpoint.clear()
        self.by_status.clear()
        self.faults.clear()
        self.output_tokens = 0
        self.max_in_flight = running

    def to_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "output_tokens": self.output_tokens,
        }
