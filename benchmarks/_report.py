"""Summaries of benchmark samples: median-of-rounds tables and the issue's PASS/FAIL targets."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

TARGETS = ("direct", "floor", "gateway")
# --metrics-cost: the same gateway without its request log, and without metrics either.
COST_TARGETS = ("gateway-nolog", "gateway-bare")
# --resume-cost: the same gateway with plain (not resumable) streams.
RESUME_TARGETS = ("gateway-noresume",)
# --baseline DIR: the gateway of another source tree (an earlier commit), same settings.
BASELINE_TARGETS = ("gateway-baseline",)


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement: one target, one mode, one concurrency, one round."""

    round: int
    mode: str
    concurrency: int
    target: str
    requests: int
    errors: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    ttfb_p50_ms: float | None
    proxy_cpu_us: float | None  # CPU of the proxy under test per request; None for direct
    proxy_busy: float | None  # share of core 0 the proxy used
    core1_busy: float  # share of core 1 used by simulator + load generator


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool | None  # None: not measured in this run
    detail: str


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _pick(samples: list[Sample], mode: str, conc: int, target: str) -> list[Sample]:
    return [s for s in samples if (s.mode, s.concurrency, s.target) == (mode, conc, target)]


def _paired(
    samples: list[Sample],
    mode: str,
    conc: int,
    a: str,
    b: str,
    op: Callable[[Sample, Sample], float | None],
) -> float | None:
    """Median over rounds of op(a, b): rounds are interleaved, so each pair shares its noise."""
    by_round = {s.round: s for s in _pick(samples, mode, conc, b)}
    return _median(
        op(s, by_round[s.round]) for s in _pick(samples, mode, conc, a) if s.round in by_round
    )


def _diff(field: str) -> Callable[[Sample, Sample], float | None]:
    def op(a: Sample, b: Sample) -> float | None:
        x, y = getattr(a, field), getattr(b, field)
        return None if x is None or y is None else x - y

    return op


def _ratio(a: Sample, b: Sample) -> float | None:
    return a.rps / b.rps if b.rps else None


def _cpu_capacity(a: Sample, b: Sample) -> float | None:
    # Requests one core could serve is 1 / CPU per request, so capacities compare inversely.
    if a.proxy_cpu_us is None or b.proxy_cpu_us is None or not a.proxy_cpu_us:
        return None
    return b.proxy_cpu_us / a.proxy_cpu_us


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _median_of(field: str, spec: str = ".2f", scale: float = 1.0) -> Callable[[list[Sample]], str]:
    def column(cell: list[Sample]) -> str:
        value = _median(getattr(s, field) for s in cell)
        return _fmt(None if value is None else value * scale, spec)

    return column


# (header, cell -> text), a cell being one (mode, concurrency, target) across rounds.
_RESULT_COLUMNS: tuple[tuple[str, Callable[[list[Sample]], str]], ...] = (
    ("req/s", _median_of("rps", ".0f")),
    ("p50 ms", _median_of("p50_ms")),
    ("p99 ms", _median_of("p99_ms")),
    ("TTFB p50 ms", _median_of("ttfb_p50_ms")),
    ("proxy CPU µs/req", _median_of("proxy_cpu_us", ".0f")),
    ("proxy core0 %", _median_of("proxy_busy", ".0f", 100.0)),
    ("core1 %", _median_of("core1_busy", ".0f", 100.0)),
    ("errors", lambda cell: str(sum(s.errors for s in cell))),
)

# (header, target a, target b, op(a, b), format), paired round by round.
_DERIVED_COLUMNS: tuple[
    tuple[str, str, str, Callable[[Sample, Sample], float | None], str], ...
] = (
    ("gateway +p50 ms", "gateway", "direct", _diff("p50_ms"), "+.2f"),
    ("floor +p50 ms", "floor", "direct", _diff("p50_ms"), "+.2f"),
    ("gateway +TTFB p50 ms", "gateway", "direct", _diff("ttfb_p50_ms"), "+.2f"),
    ("floor +TTFB p50 ms", "floor", "direct", _diff("ttfb_p50_ms"), "+.2f"),
    ("gateway/floor req/s", "gateway", "floor", _ratio, ".2f"),
    ("gateway - floor CPU µs/req", "gateway", "floor", _diff("proxy_cpu_us"), "+.0f"),
    ("gateway/floor req/s per core (by CPU)", "gateway", "floor", _cpu_capacity, ".2f"),
)


def results_table(
    samples: list[Sample], modes: list[str], concs: list[int], targets: tuple[str, ...] = TARGETS
) -> str:
    header = ["mode", "conc", "target", *(name for name, _ in _RESULT_COLUMNS)]
    rows = [
        [
            mode,
            str(conc),
            target,
            *(col(_pick(samples, mode, conc, target)) for _, col in _RESULT_COLUMNS),
        ]
        for mode in modes
        for conc in concs
        for target in targets
    ]
    return _table(header, rows)


def _cpu_share(a: Sample, b: Sample) -> float | None:
    """How much of a's CPU per request b does not spend, in percent of a's."""
    if a.proxy_cpu_us is None or b.proxy_cpu_us is None or not a.proxy_cpu_us:
        return None
    return 100 * (a.proxy_cpu_us - b.proxy_cpu_us) / a.proxy_cpu_us


_COST_COLUMNS: tuple[tuple[str, str, str, Callable[[Sample, Sample], float | None], str], ...] = (
    ("full/bare req/s", "gateway", "gateway-bare", _ratio, ".2f"),
    ("full - bare CPU µs/req", "gateway", "gateway-bare", _diff("proxy_cpu_us"), "+.0f"),
    (
        "metrics: nolog - bare CPU µs/req",
        "gateway-nolog",
        "gateway-bare",
        _diff("proxy_cpu_us"),
        "+.0f",
    ),
    ("metrics % of CPU/req", "gateway-nolog", "gateway-bare", _cpu_share, ".1f"),
    ("log: full - nolog CPU µs/req", "gateway", "gateway-nolog", _diff("proxy_cpu_us"), "+.0f"),
    ("log % of CPU/req", "gateway", "gateway-nolog", _cpu_share, ".1f"),
)


_RESUME_COLUMNS: tuple[tuple[str, str, str, Callable[[Sample, Sample], float | None], str], ...] = (
    ("resumable/plain req/s", "gateway", "gateway-noresume", _ratio, ".2f"),
    ("resumable - plain CPU µs/req", "gateway", "gateway-noresume", _diff("proxy_cpu_us"), "+.0f"),
    ("resume % of CPU/req", "gateway", "gateway-noresume", _cpu_share, ".1f"),
    ("resumable - plain p50 ms", "gateway", "gateway-noresume", _diff("p50_ms"), "+.2f"),
    ("resumable - plain TTFB ms", "gateway", "gateway-noresume", _diff("ttfb_p50_ms"), "+.2f"),
)


_BASELINE_COLUMNS: tuple[
    tuple[str, str, str, Callable[[Sample, Sample], float | None], str], ...
] = (
    ("this +p50 ms", "gateway", "direct", _diff("p50_ms"), "+.2f"),
    ("baseline +p50 ms", "gateway-baseline", "direct", _diff("p50_ms"), "+.2f"),
    ("this +TTFB ms", "gateway", "direct", _diff("ttfb_p50_ms"), "+.2f"),
    ("baseline +TTFB ms", "gateway-baseline", "direct", _diff("ttfb_p50_ms"), "+.2f"),
    ("this/baseline req/s", "gateway", "gateway-baseline", _ratio, ".2f"),
    ("this/floor req/s", "gateway", "floor", _ratio, ".2f"),
    ("baseline/floor req/s", "gateway-baseline", "floor", _ratio, ".2f"),
    ("this - baseline CPU µs/req", "gateway", "gateway-baseline", _diff("proxy_cpu_us"), "+.0f"),
)


def baseline_table(samples: list[Sample], modes: list[str], concs: list[int]) -> str:
    """This tree's gateway against another tree's, measured in the same rounds."""
    return _paired_table(samples, modes, concs, _BASELINE_COLUMNS)


def _paired_table(
    samples: list[Sample],
    modes: list[str],
    concs: list[int],
    columns: tuple[tuple[str, str, str, Callable[[Sample, Sample], float | None], str], ...],
) -> str:
    header = ["mode", "conc", *(column[0] for column in columns)]
    rows = [
        [
            mode,
            str(conc),
            *(_fmt(_paired(samples, mode, conc, a, b, op), spec) for _, a, b, op, spec in columns),
        ]
        for mode in modes
        for conc in concs
    ]
    return _table(header, rows)


def cost_table(samples: list[Sample], modes: list[str], concs: list[int]) -> str:
    """What the request log and the metrics cost: the gateway against itself without them."""
    return _paired_table(samples, modes, concs, _COST_COLUMNS)


def resume_cost_table(samples: list[Sample], concs: list[int]) -> str:
    """What resumable streams (generation task + replay log) cost against plain relaying."""
    return _paired_table(samples, ["stream"], concs, _RESUME_COLUMNS)


def derived_table(samples: list[Sample], modes: list[str], concs: list[int]) -> str:
    return _paired_table(samples, modes, concs, _DERIVED_COLUMNS)


def saturation_note(samples: list[Sample], threshold: float = 0.9) -> str:
    """Warn when core 1 (simulator + load) was the bottleneck rather than the proxy."""
    busy = sorted(
        {
            (s.mode, s.concurrency)
            for s in samples
            if s.target != "direct" and s.core1_busy >= threshold
        }
    )
    if not busy:
        return "Core 1 (simulator + load) stayed below 90 % busy behind the proxies."
    cells = ", ".join(f"{mode} c={conc}" for mode, conc in busy)
    return (
        f"Core 1 (simulator + load) was ≥ 90 % busy behind the proxies in: {cells}. "
        "There req/s is capped by core 1, not the proxy; compare CPU µs/req (last columns) "
        "for the proxies' true cost."
    )


def checks(samples: list[Sample], idle_rss_mb: float) -> list[Check]:
    """The targets from the issue, in the order it lists them."""
    added_p50 = _paired(samples, "json", 1, "gateway", "direct", _diff("p50_ms"))
    added_ttfb = _paired(samples, "stream", 1, "gateway", "direct", _diff("ttfb_p50_ms"))
    result = [
        _at_most("added p50 at concurrency 1 (json)", added_p50, 1.0, "ms"),
        _at_most("added TTFB p50 at concurrency 1 (stream)", added_ttfb, 1.0, "ms"),
    ]
    for mode in ("json", "stream"):
        ratio = _paired(samples, mode, 64, "gateway", "floor", _ratio)
        name = f"gateway req/s ≥ 0.5 x floor at concurrency 64 ({mode})"
        if ratio is None:
            result.append(Check(name, None, "not measured"))
        else:
            result.append(Check(name, ratio >= 0.5, f"{ratio:.2f} x floor"))
    result.append(_at_most("idle RSS < 80 MB", idle_rss_mb, 80.0, "MB", strict=True))
    errors = sum(s.errors for s in samples)
    result.append(Check("no errors", errors == 0, f"{errors} errors"))
    return result


def _at_most(
    name: str, value: float | None, limit: float, unit: str, strict: bool = False
) -> Check:
    if value is None:
        return Check(name, None, "not measured")
    passed = value < limit if strict else value <= limit
    return Check(name, passed, f"{value:.2f} {unit} (limit {limit:g} {unit})")


def render_checks(results: list[Check]) -> str:
    labels = {True: "PASS", False: "FAIL", None: "SKIP"}
    return "\n".join(f"{labels[c.passed]}  {c.name}: {c.detail}" for c in results)
