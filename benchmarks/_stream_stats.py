"""Latency statistics: percentiles, each cell's stats, medians of rounds paired with direct."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from _stream_answer import DELTAS, EVENTS, LEAD_EVENTS
from _stream_cluster import CpuMeter


def pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@dataclass(slots=True)
class Stats:
    """One (phase, concurrency, target, round) cell; times in ms."""

    phase: str
    concurrency: int
    target: str
    round: int
    streams: int
    errors: int
    error_samples: list[str]
    ttfe_p50: float | None  # request sent -> message_start received
    ttfe_p99: float | None
    ttle_p50: float | None  # request sent -> message_stop received
    ttle_p99: float | None
    gap_p50: float | None  # between consecutive text deltas, as received
    gap_p99: float | None
    jitter_p99: float | None  # gap minus its scheduled value (its tokens x per-token delay)
    late_p50: float | None  # arrival minus the direct streams' median arrival, same event
    late_p99: float | None
    gateway_busy: float | None  # share of core 0
    core1_busy: float  # simulator + load generator, share of core 1
    load_busy: float
    gateway_us_per_event: float | None
    core1_us_per_event: float | None
    steal0: float | None
    steal1: float | None


def cell_stats(
    phase: str,
    conc: int,
    target: str,
    round_: int,
    result: dict[str, Any],
    reference: list[float],
    schedule_ms: list[float],
    meter: CpuMeter,
) -> Stats:
    """``reference``: per event, the direct streams' median arrival (ms since their start)."""
    streams = [[t / 1000.0 for t in offsets] for _, offsets in result["streams"]]
    first = sorted(s[0] for s in streams)
    last = sorted(s[-1] for s in streams)
    gaps: list[float] = []
    jitter: list[float] = []
    late: list[float] = []
    for s in streams:
        d = s[LEAD_EVENTS : LEAD_EVENTS + DELTAS]
        for i in range(1, len(d)):
            gap = d[i] - d[i - 1]
            gaps.append(gap)
            jitter.append(gap - schedule_ms[i])
        late.extend(t - r for t, r in zip(s, reference, strict=True))
    for values in (gaps, jitter, late):
        values.sort()
    events = len(streams) * EVENTS
    via_gateway = target != "direct-sse"
    core1_cpu = meter.cpu["sim"] + meter.cpu["load"]
    steal = [*meter.steal, 0.0, 0.0]
    return Stats(
        phase=phase,
        concurrency=conc,
        target=target,
        round=round_,
        streams=len(streams),
        errors=result["errors"],
        error_samples=result["error_samples"],
        ttfe_p50=pct(first, 0.5),
        ttfe_p99=pct(first, 0.99),
        ttle_p50=pct(last, 0.5),
        ttle_p99=pct(last, 0.99),
        gap_p50=pct(gaps, 0.5),
        gap_p99=pct(gaps, 0.99),
        jitter_p99=pct(jitter, 0.99),
        late_p50=pct(late, 0.5),
        late_p99=pct(late, 0.99),
        gateway_busy=meter.busy("gateway") if via_gateway else None,
        core1_busy=meter.busy("sim") + meter.busy("load"),
        load_busy=meter.busy("load"),
        gateway_us_per_event=meter.cpu["gateway"] / events * 1e6
        if via_gateway and events
        else None,
        core1_us_per_event=core1_cpu / events * 1e6 if events else None,
        steal0=steal[0],
        steal1=steal[1],
    )


def event_reference(result: dict[str, Any]) -> list[float]:
    streams = [offsets for _, offsets in result["streams"]]
    if not streams:
        raise RuntimeError(f"direct target gave no complete stream: {result['error_samples']}")
    return [statistics.median(column) / 1000.0 for column in zip(*streams, strict=True)]


def _cell(samples: list[Stats], phase: str, conc: int, target: str) -> list[Stats]:
    return [s for s in samples if (s.phase, s.concurrency, s.target) == (phase, conc, target)]


def _med(cell: list[Stats], name: str) -> float | None:
    return median([getattr(s, name) for s in cell])


def paired(samples: list[Stats], phase: str, conc: int, target: str, name: str) -> float | None:
    """Median over rounds of (target - direct) for one field: each pair shares its round."""
    direct = {s.round: s for s in _cell(samples, phase, conc, "direct-sse")}
    diffs = []
    for s in _cell(samples, phase, conc, target):
        d = direct.get(s.round)
        a, b = getattr(s, name), getattr(d, name) if d is not None else None
        if a is not None and b is not None:
            diffs.append(a - b)
    return median(diffs)
