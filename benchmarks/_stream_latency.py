"""The latency phases (paced, burst): the three targets measured in interleaved rounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _stream_answer import EVENTS
from _stream_cluster import TARGETS, Cluster, CpuMeter
from _stream_stats import Stats, cell_stats, event_reference
from _stream_tables import _f


@dataclass(frozen=True, slots=True)
class Phase:
    name: str  # "paced" | "burst"
    concurrency: list[int]
    duration: float  # seconds in which workers start new streams (c=1 gets 2x)
    stream_s: float  # expected length of one stream: the workers' starts spread over it
    schedule_ms: list[float]  # scheduled gap before each delta (index 0 unused)


def run_latency_phase(
    cluster: Cluster, phase: Phase, answer_tokens: int, rounds: int, log: Callable[[str], None]
) -> list[Stats]:
    def job(target: str, conc: int, duration: float) -> dict[str, Any]:
        stagger = phase.stream_s if conc > 1 else 0.0
        return cluster.job(
            target, answer_tokens, EVENTS, concurrency=conc, stagger=stagger, duration=duration
        )

    # Warm-up at the largest concurrency: connection pools open (load -> simulator and
    # gateway, gateway -> simulator), code paths and the allocator settled.
    for target in TARGETS:
        warm = cluster.run(job(target, max(phase.concurrency), max(1.0, phase.stream_s)))
        if warm["errors"]:
            log(f"  ! warm-up {target}: {warm['errors']} errors, e.g. {warm['error_samples']}")
    samples: list[Stats] = []
    for round_ in range(rounds):
        for index, conc in enumerate(phase.concurrency):
            duration = phase.duration * (2.0 if conc == 1 else 1.0)
            # Rotate the order so that no target always runs first, or after another.
            shift = (round_ + index) % len(TARGETS)
            raw: dict[str, tuple[dict[str, Any], CpuMeter]] = {}
            for target in TARGETS[shift:] + TARGETS[:shift]:
                with CpuMeter(cluster) as meter:
                    result = cluster.run(job(target, conc, duration))
                raw[target] = (result, meter)
                if result["errors"]:
                    log(
                        f"  ! {phase.name} c={conc} {target}: {result['errors']} errors, "
                        f"e.g. {result['error_samples']}"
                    )
            reference = event_reference(raw["direct-sse"][0])
            for target in TARGETS:
                result, meter = raw[target]
                s = cell_stats(
                    phase.name, conc, target, round_, result, reference, phase.schedule_ms, meter
                )
                samples.append(s)
                gw = "" if s.gateway_busy is None else f" gw {s.gateway_busy:.0%}"
                log(
                    f"  {phase.name} {round_ + 1}/{rounds} c={conc:<4} {target:11} "
                    f"{s.streams:5} streams TTFE {_f(s.ttfe_p50)} TTLE {_f(s.ttle_p50)} "
                    f"late p50/p99 {_f(s.late_p50)}/{_f(s.late_p99)} ms{gw} "
                    f"core1 {s.core1_busy:.0%}"
                )
    return samples
