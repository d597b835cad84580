"""The capacity phase: N streams open at once, the gateway's RSS and the gaps they get."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from _procs import rss_mb
from _stream_answer import DELTAS, LEAD_EVENTS, TRAIL_EVENTS, Answer
from _stream_cluster import Cluster, CpuMeter
from _stream_stats import pct

if TYPE_CHECKING:
    from streaming import Options


@dataclass(slots=True)
class Capacity:
    target: str
    streams: int
    deltas: int
    ramp_s: float
    completed: int
    errors: int
    error_samples: list[str]
    all_open_s: float | None  # since the job began, when every stream had its first event
    window_s: float  # how long all N were open at once
    rss_open_mb: float | None  # gateway RSS read the moment all were open
    rss_max_mb: float | None  # highest gateway RSS sampled while all were open
    hwm_mb: float | None  # gateway peak RSS since it started (VmHWM)
    gap_p50: float | None  # gap minus its scheduled value, inside the all-open window, ms
    gap_p99: float | None
    gap_max: float | None
    gap_p99_all: float | None  # the same over the whole run, ramp and wind-down included
    gateway_busy: float | None
    sim_busy: float
    load_busy: float
    steal0: float | None
    listen_overflows: int  # the machine's TCP ListenOverflows during the run
    core1_us_per_event: float | None  # simulator + load generator CPU per event delivered
    sim_rss_mb: float


def vm_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmHWM for pid {pid}")


def listen_overflows() -> int:
    """TcpExt ListenOverflows: connections dropped because an accept queue was full."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(fields.get("ListenOverflows", 0))
    return 0


class RssSampler:
    """Samples a process's RSS every 0.2 s in a thread, with monotonic timestamps."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(OSError, RuntimeError):
                self.samples.append((time.monotonic(), rss_mb(self.pid)))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def capacity_deltas(answer: Answer, per_token_ms: float, seconds: float) -> int:
    """The fewest deltas whose stream lasts at least ``seconds`` (at most 64)."""
    for deltas in range(1, DELTAS + 1):
        if sum(answer.schedule(deltas, per_token_ms)) >= seconds * 1000.0:
            return deltas
    return DELTAS


def run_capacity(
    cluster: Cluster, target: str, n: int, answer: Answer, per_token_ms: float, opts: Options
) -> Capacity:
    ramp = max(1.0, n / opts.open_rate)
    # Long enough that all N are open together for ``hold`` s even if opening them lags
    # a little behind the plan.
    deltas = capacity_deltas(answer, per_token_ms, ramp + opts.hold + max(2.0, ramp / 4))
    schedule_ms = answer.schedule(deltas, per_token_ms)
    job = cluster.job(
        target,
        answer.tokens_for(deltas),
        LEAD_EVENTS + deltas + TRAIL_EVENTS,
        concurrency=n,
        stagger=ramp,
        hold=True,
    )
    opened: dict[str, float] = {}
    via_gateway = target != "direct-sse"

    def on_open(line: dict[str, Any]) -> None:
        opened["rss"] = rss_mb(cluster.gateway.pid)
        opened["at_s"] = line["at_s"]

    job_start = time.monotonic()
    overflows = listen_overflows()
    with RssSampler(cluster.gateway.pid) as sampler, CpuMeter(cluster) as meter:
        result = cluster.run(job, on_open)
    overflows = listen_overflows() - overflows
    # Absolute times (s since the job began) of every stream's events.
    absolute = [[(start + t) / 1e6 for t in offsets] for start, offsets in result["streams"]]
    all_open = opened.get("at_s")
    first_close = min((s[-1] for s in absolute), default=0.0)
    window = max(0.0, first_close - all_open) if all_open is not None else 0.0
    inside: list[float] = []
    every: list[float] = []
    for s in absolute:
        d = s[LEAD_EVENTS : LEAD_EVENTS + deltas]
        for i in range(1, len(d)):
            added = (d[i] - d[i - 1]) * 1000.0 - schedule_ms[i]
            every.append(added)
            if all_open is not None and d[i - 1] >= all_open and d[i] <= first_close:
                inside.append(added)
    inside.sort()
    every.sort()
    rss_inside = [
        rss
        for t, rss in sampler.samples
        if all_open is not None and job_start + all_open <= t <= job_start + first_close
    ]
    return Capacity(
        target=target,
        streams=n,
        deltas=deltas,
        ramp_s=ramp,
        completed=len(absolute),
        errors=result["errors"],
        error_samples=result["error_samples"],
        all_open_s=all_open,
        window_s=window,
        rss_open_mb=opened.get("rss") if via_gateway else None,
        rss_max_mb=max(rss_inside) if rss_inside and via_gateway else None,
        hwm_mb=vm_hwm_mb(cluster.gateway.pid) if via_gateway else None,
        gap_p50=pct(inside, 0.5),
        gap_p99=pct(inside, 0.99),
        gap_max=inside[-1] if inside else None,
        gap_p99_all=pct(every, 0.99),
        gateway_busy=meter.busy("gateway") if via_gateway else None,
        sim_busy=meter.busy("sim"),
        load_busy=meter.busy("load"),
        steal0=meter.steal[0] if meter.steal else None,
        listen_overflows=overflows,
        core1_us_per_event=(meter.cpu["sim"] + meter.cpu["load"]) / events * 1e6
        if (events := sum(len(s) for s in absolute))
        else None,
        sim_rss_mb=rss_mb(cluster.sim.pid),
    )
