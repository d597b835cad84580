"""The report: markdown tables, saturation and feasibility notes, the claim lines, the checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _report import Check
from _stream_answer import EVENTS
from _stream_capacity import Capacity
from _stream_cluster import TARGETS
from _stream_stats import Stats, _cell, _med, median, paired

if TYPE_CHECKING:
    from streaming import Options

CAPACITY_TARGET_N = 5000
CAPACITY_GAP_P99_MS = 5.0
CAPACITY_RSS_MB = 1024.0
CLAIMED_CUT = 0.60
NOISE_MS = 0.1  # added latencies below this are "nothing" for the claim's ratio


def _f(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


_RESULT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("streams/round", "streams", ".0f"),
    ("TTFE p50 ms", "ttfe_p50", ".2f"),
    ("TTFE p99 ms", "ttfe_p99", ".2f"),
    ("TTLE p50 ms", "ttle_p50", ".2f"),
    ("gap p50 ms", "gap_p50", ".2f"),
    ("gap p99 ms", "gap_p99", ".2f"),
    ("gap-sched p99 ms", "jitter_p99", "+.2f"),
    ("event vs direct p50 ms", "late_p50", "+.2f"),
    ("event vs direct p99 ms", "late_p99", "+.2f"),
    ("gateway core0", "gateway_busy", ".0%"),
    ("gateway µs/event", "gateway_us_per_event", ".0f"),
    ("core1 (sim+load)", "core1_busy", ".0%"),
    ("load", "load_busy", ".0%"),
    ("core1 µs/event", "core1_us_per_event", ".0f"),
    ("steal core0", "steal0", ".1%"),
)


def results_table(samples: list[Stats], phase: str, concs: list[int]) -> str:
    header = ["conc", "target", *(name for name, _, _ in _RESULT_COLUMNS), "errors"]
    rows = []
    for conc in concs:
        for target in TARGETS:
            cell = _cell(samples, phase, conc, target)
            rows.append(
                [
                    str(conc),
                    target,
                    *(_f(_med(cell, field_), spec) for _, field_, spec in _RESULT_COLUMNS),
                    str(sum(s.errors for s in cell)),
                ]
            )
    return table(header, rows)


_ADDED_COLUMNS = (
    ("+TTFE p50 ms", "ttfe_p50"),
    ("+TTLE p50 ms", "ttle_p50"),
    ("+per-event p50 ms", "late_p50"),
    ("+per-event p99 ms", "late_p99"),
    ("+gap p99 ms", "gap_p99"),
)


def added_table(samples: list[Stats], phase: str, concs: list[int]) -> str:
    header = ["conc", "target", *(name for name, _ in _ADDED_COLUMNS)]
    rows = [
        [
            str(conc),
            target,
            *(_f(paired(samples, phase, conc, target, f), "+.2f") for _, f in _ADDED_COLUMNS),
        ]
        for conc in concs
        for target in TARGETS[1:]
    ]
    return table(header, rows)


def saturation(samples: list[Stats], phase: str) -> str:
    mine = [s for s in samples if s.phase == phase]
    # At c=1 the load waits for each answer: a busy core there has no idle time, not a queue.
    core1 = sorted({s.concurrency for s in mine if s.core1_busy >= 0.9 and s.concurrency > 1})
    gw = sorted({s.concurrency for s in mine if (s.gateway_busy or 0.0) >= 0.9})
    notes = []
    if core1:
        notes.append(f"core 1 (simulator + load) was ≥ 90 % busy at c={', '.join(map(str, core1))}")
    if gw:
        notes.append(f"the gateway's core was ≥ 90 % busy at c={', '.join(map(str, gw))}")
    if not notes:
        return "Saturation: core 1 (simulator + load) and core 0 (gateway) stayed below 90 %."
    return "Saturation: " + "; ".join(notes) + "."


def feasibility(samples: list[Stats], opts: Options, stream_s: float) -> str:
    """How many paced streams core 1 could feed, from its measured CPU per event."""
    per_event = median(
        [
            s.core1_us_per_event
            for s in samples
            if s.phase == "paced"
            and s.target == "direct-sse"
            and s.concurrency == max(opts.paced_concurrency)
        ]
    )
    if per_event is None:
        return ""
    rate = EVENTS / stream_s  # events per second per stream
    most = 0.9 / (per_event * 1e-6 * rate)
    return (
        f"Core 1 spends {per_event:.0f} µs of CPU per event on a direct stream (simulator + "
        f"load generator), and a paced stream is {rate:.0f} events/s: core 1 feeds at most "
        f"~{most:.0f} such streams at 90 % busy, so 1,000 paced streams at "
        f"{opts.gap_ms:g} ms would need {1000 * rate * per_event * 1e-6:.1f} cores there. "
        "Concurrencies in the thousands are measured in section 3 with slower pacing.\n"
    )


def claim_lines(samples: list[Stats], opts: Options) -> tuple[list[str], bool | None]:
    """The design note's '60 % less latency overhead over WebSocket than HTTP', per figure."""
    lines = []
    verdicts: list[bool] = []
    figures = [("paced", c, "late_p50", "per-event added p50") for c in opts.paced_concurrency]
    figures += [("paced", c, "ttfe_p50", "TTFE added p50") for c in opts.paced_concurrency]
    figures += [("burst", c, "ttle_p50", "TTLE added p50") for c in opts.burst_concurrency]
    for phase, conc, name, label in figures:
        sse = paired(samples, phase, conc, "gateway-sse", name)
        ws = paired(samples, phase, conc, "gateway-ws", name)
        if sse is None or ws is None:
            continue
        head = f"{phase} c={conc} {label}: SSE {sse:+.2f} ms, WebSocket {ws:+.2f} ms"
        if sse < NOISE_MS:
            lines.append(f"{head} -> SSE adds nothing measurable here; no 60 % to cut")
            continue
        cut = 1.0 - ws / sse
        holds = cut >= CLAIMED_CUT
        verdicts.append(holds)
        verdict = "60 % claim holds" if holds else "60 % claim does not hold"
        change = f"{cut:.0%} less" if cut >= 0 else f"{-cut:.0%} more"
        lines.append(f"{head} -> WebSocket adds {change} than SSE ({verdict})")
    if verdicts:
        lines.append(f"the claim holds in {sum(verdicts)} of {len(verdicts)} figures")
    return lines, (all(verdicts) if verdicts else None)


def capacity_table(rows: list[Capacity]) -> str:
    header = [
        "target",
        "streams",
        "deltas each",
        "opened over s",
        "all open after s",
        "all open for s",
        "gateway RSS all open MB",
        "gateway RSS max while open MB",
        "gateway peak RSS MB",
        "gap-pacing p50 ms",
        "gap-pacing p99 ms",
        "gap-pacing max ms",
        "p99 whole run ms",
        "gateway core0",
        "sim",
        "load",
        "core1 µs/event",
        "sim RSS MB",
        "steal core0",
        "listen overflows",
        "completed",
        "errors",
    ]
    body = [
        [
            r.target,
            str(r.streams),
            str(r.deltas),
            _f(r.ramp_s, ".1f"),
            _f(r.all_open_s, ".1f"),
            _f(r.window_s, ".1f"),
            _f(r.rss_open_mb, ".0f"),
            _f(r.rss_max_mb, ".0f"),
            _f(r.hwm_mb, ".0f"),
            _f(r.gap_p50, "+.2f"),
            _f(r.gap_p99, "+.2f"),
            _f(r.gap_max, "+.2f"),
            _f(r.gap_p99_all, "+.2f"),
            _f(r.gateway_busy, ".0%"),
            _f(r.sim_busy, ".0%"),
            _f(r.load_busy, ".0%"),
            _f(r.core1_us_per_event, ".0f"),
            f"{r.sim_rss_mb:.0f}",
            _f(r.steal0, ".1%"),
            str(r.listen_overflows),
            str(r.completed),
            str(r.errors),
        ]
        for r in rows
    ]
    return table(header, body)


def capacity_checks(rows: list[Capacity]) -> list[Check]:
    n = CAPACITY_TARGET_N
    name_rss = f"{n:,} concurrent streams in one process under {CAPACITY_RSS_MB:g} MiB RSS"
    name_gap = f"inter-event gap p99 added ≤ {CAPACITY_GAP_P99_MS:g} ms at {n:,} streams"
    row = next((r for r in rows if r.target == "gateway-sse" and r.streams == n), None)
    if row is None:
        return [Check(name_rss, None, "not measured"), Check(name_gap, None, "not measured")]
    held = row.completed == n and row.all_open_s is not None and row.window_s > 0
    rss = max(v for v in (row.rss_max_mb, row.rss_open_mb, 0.0) if v is not None)
    return [
        Check(
            name_rss,
            held and rss < CAPACITY_RSS_MB,
            f"{row.completed}/{n} streams held open together for {row.window_s:.1f} s, "
            f"RSS {rss:.0f} MB with all open (peak {_f(row.hwm_mb, '.0f')} MB)",
        ),
        Check(
            name_gap,
            None if row.gap_p99 is None else held and row.gap_p99 <= CAPACITY_GAP_P99_MS,
            f"{_f(row.gap_p99, '+.2f')} ms versus the pacing while all were open "
            f"({_f(row.gap_p99_all, '+.2f')} ms over the whole run, opening included)",
        ),
    ]
