"""A bench run's results: per-row statistics, as markdown tables and as JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from claude_proxy.bench.call import Sample
from claude_proxy.bench.plan import CACHE_HEADER, DESIGN_NOTE, Case, Plan
from claude_proxy.bench.processes import Memory

__all__ = ["Report", "RowResult", "markdown", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated linearly between order statistics."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(slots=True)
class RowResult:
    case: Case
    samples: list[Sample] = field(default_factory=list)
    memory: Memory | None = None  # the gateway's, after the row (peak: during it)

    def ms(self, which: str, q: float) -> float:
        return 1000.0 * percentile([getattr(s, which) for s in self.samples], q)

    @property
    def input_tokens(self) -> float:
        return _mean([s.input_tokens for s in self.samples])

    @property
    def output_tokens(self) -> float:
        return _mean([s.output_tokens for s in self.samples])

    @property
    def cache_reads(self) -> int:
        return sum(1 for s in self.samples if s.cache_read > 0)

    @property
    def cache_read_tokens(self) -> float:
        """Cached input read per request that read the cache (0 when none did)."""
        return _mean([s.cache_read for s in self.samples if s.cache_read > 0])

    def to_json(self) -> dict[str, Any]:
        return {
            "series": self.case.series,
            "max_tokens": self.case.max_tokens,
            "input_tokens_asked": self.case.input_tokens,
            "prompt_cache": self.case.cache,
            "runs": len(self.samples),
            "ttft_ms": {"p50": self.ms("ttft", 50), "p95": self.ms("ttft", 95)},
            "latency_ms": {"p50": self.ms("latency", 50), "p95": self.ms("latency", 95)},
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_reads": self.cache_reads,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation_input_tokens": _mean([s.cache_write for s in self.samples]),
            "rss_mb": self.memory.rss_mb if self.memory else None,
            "peak_rss_mb": self.memory.peak_mb if self.memory else None,
            "samples": [
                {
                    "ttft_ms": 1000.0 * s.ttft,
                    "latency_ms": 1000.0 * s.latency,
                    "input_tokens": s.input_tokens,
                    "cache_read_input_tokens": s.cache_read,
                    "cache_creation_input_tokens": s.cache_write,
                    "output_tokens": s.output_tokens,
                    "stop_reason": s.stop_reason,
                }
                for s in self.samples
            ],
        }


@dataclass(slots=True)
class Report:
    plan: Plan
    upstream: str  # what answered: "the simulator (speed 1)", or a URL
    gateway: str  # what was measured: "a gateway started for the bench", or a URL
    date: str
    rows: list[RowResult] = field(default_factory=list)
    idle: Memory | None = None  # the gateway's memory before the first row
    peak_per_row: bool = True  # False: each peak is the peak since the gateway started
    seconds: float = 0.0
    # The design note's figures are a reference only for the simulator at speed 1 or a
    # real upstream, not for a faster simulator.
    comparable: bool = True

    def series(self, name: str) -> list[RowResult]:
        return [row for row in self.rows if row.case.series == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.plan.model,
            "runs": self.plan.runs,
            "upstream": self.upstream,
            "gateway": self.gateway,
            "date": self.date,
            "seconds": self.seconds,
            "idle_rss_mb": self.idle.rss_mb if self.idle else None,
            "peak_rss_per_row": self.peak_per_row,
            "rows": [row.to_json() for row in self.rows],
        }


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _mb(memory: Memory | None) -> tuple[str, str]:
    if memory is None:
        return "-", "-"
    return f"{memory.rss_mb:.1f}", f"{memory.peak_mb:.1f}"


def _timings(row: RowResult) -> list[str]:
    return [_ms(row.ms(which, q)) for which in ("ttft", "latency") for q in (50, 95)]


def _table(header: list[str], lines: list[list[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def markdown(report: Report) -> str:
    """The report as the README's benchmark tables are written: a heading line, then one
    table by ``max_tokens`` and one by input length."""
    plan = report.plan
    timing = ["TTFT p50 ms", "TTFT p95 ms", "latency p50 ms", "latency p95 ms"]
    memory = ["gateway RSS MB", "peak RSS MB"]
    if report.idle is not None:
        idle = f"; gateway RSS at rest {report.idle.rss_mb:.1f} MB"
    else:
        idle = "; gateway memory not measured (it needs the gateway's pid: --gateway-pid)"
    requests = "request" if plan.runs == 1 else "requests"
    parts = [
        f"claude-proxy bench, {report.date}: {plan.model} through {report.gateway} to "
        f"{report.upstream}; {plan.runs} streamed {requests} a row, one at a time; "
        f"{report.seconds:.0f} s{idle}."
    ]
    by_output = report.series("max_tokens")
    if by_output:
        lines = []
        for row in by_output:
            note = DESIGN_NOTE.get(row.case.max_tokens) if report.comparable else None
            lines.append(
                [
                    f"{row.case.max_tokens:,}",
                    f"{row.output_tokens:,.0f}",
                    *_timings(row),
                    *_mb(row.memory),
                    f"{note[0]:,} ms, {note[1]} MB" if note else "-",
                ]
            )
        parts.append("By max_tokens (a short prompt asking for a long answer):")
        parts.append(
            _table(["max_tokens", "output tokens", *timing, *memory, "design note"], lines)
        )
    by_input = report.series("input")
    if by_input:
        lines = []
        for row in by_input:
            read = row.cache_read_tokens
            lines.append(
                [
                    f"{row.case.input_tokens or 0:,}",
                    f"{row.input_tokens:,.0f}",
                    row.case.cache,
                    f"{row.cache_reads}/{len(row.samples)}",
                    f"{read:,.0f}" if read else "0",
                    *_timings(row),
                    *_mb(row.memory),
                ]
            )
        parts.append(
            f"By input length (a report in the system prompt and a different question each "
            f"run, max_tokens {plan.input_max_tokens}; cache off: `{CACHE_HEADER}: off`, "
            "on: the request as sent; input tokens as estimated by the gateway, then as "
            "the upstream counted them):"
        )
        header = ["input tokens", "usage input tokens", "prompt cache", "cache reads"]
        header.append("cache read tokens")
        parts.append(_table([*header, *timing, *memory], lines))
    if not report.peak_per_row:
        parts.append("Peak RSS: the most since the gateway started (no per-row reset here).")
    return "\n\n".join(parts) + "\n"
