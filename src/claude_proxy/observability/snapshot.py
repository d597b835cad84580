"""Collected metric families -> the plain numbers the dashboard shows.

Counters stay cumulative: the page derives rates (and quantiles over its own
window, from bucket deltas) between two polls, so any number of viewers can
poll without sharing state here. The p50/p95 given are since start.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

__all__ = ["build_snapshot", "histogram_quantile"]

_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's estimate: linear interpolation inside the bucket holding rank ``q``.

    ``buckets``: (upper bound, cumulative count), sorted, ending with +Inf.
    ``None`` when there are no observations.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # above the largest finite bound: that bound is all we know
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


class _Samples:
    def __init__(self, families: Iterable[Metric]) -> None:
        self._by_name: dict[str, list[Sample]] = defaultdict(list)
        for family in families:
            for sample in family.samples:
                self._by_name[sample.name].append(sample)

    def total(self, name: str) -> float:
        return sum(s.value for s in self._by_name.get(name, ()))

    def by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for sample in self._by_name.get(name, ()):
            out[sample.labels.get(label, "")] += sample.value
        return dict(out)

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """Cumulative counts by upper bound, summed over all other labels."""
        out: dict[float, float] = defaultdict(float)
        for sample in self._by_name.get(f"{name}_bucket", ()):
            out[float(sample.labels["le"])] += sample.value
        return sorted(out.items())


def _histogram(samples: _Samples, name: str) -> dict[str, Any]:
    buckets = samples.buckets(name)
    return {
        "count": samples.total(f"{name}_count"),
        "sum": samples.total(f"{name}_sum"),
        "p50": histogram_quantile(0.5, buckets),
        "p95": histogram_quantile(0.95, buckets),
        # JSON has no +Inf: the last bucket is ``count``.
        "buckets": [[le, count] for le, count in buckets if not math.isinf(le)],
    }


def _tenants(samples: _Samples) -> dict[str, dict[str, float]]:
    columns: Mapping[str, dict[str, float]] = {
        "requests": samples.by("api_request_duration_seconds_count", "tenant"),
        "errors": samples.by("api_errors_total", "tenant"),
        "in_flight": samples.by("api_tenant_in_flight", "tenant"),
        "queued": samples.by("api_queue_depth", "tenant"),
    }
    names = sorted(set().union(*columns.values()))
    return {name: {key: col.get(name, 0.0) for key, col in columns.items()} for name in names}


def build_snapshot(families: Iterable[Metric], now: float) -> dict[str, Any]:
    """Totals, current values and latency estimates; see the module docstring."""
    s = _Samples(families)
    errors_by_type = s.by("api_errors_total", "error_type")
    tokens = s.by("api_tokens_total", "type")
    return {
        "time": now,
        "requests": s.total("api_request_duration_seconds_count"),
        "errors": sum(errors_by_type.values()),
        "errors_by_type": errors_by_type,
        "in_flight": s.total("api_requests_in_flight"),
        "open_streams": s.total("api_open_streams"),
        "latency": _histogram(s, "api_request_duration_seconds"),
        "ttft": _histogram(s, "api_time_to_first_token_seconds"),
        "overhead": _histogram(s, "api_gateway_overhead_seconds"),
        "tokens": {kind: tokens.get(kind, 0.0) for kind in _TOKEN_TYPES},
        "tenants": _tenants(s),
        "upstream": {
            "attempts": s.total("api_upstream_attempts_total"),
            "attempts_by_outcome": s.by("api_upstream_attempts_total", "outcome"),
            "retries": s.total("api_upstream_retries_total"),
            "heals": s.total("api_stream_heals_total"),
            "window": s.total("api_upstream_window"),
            "breakers": s.by("api_circuit_breaker_state", "deployment"),
        },
    }
