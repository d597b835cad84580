"""What recording one request's metrics costs, in-process: Metrics against NullMetrics.

The same calls the pipeline makes for one request granted at once (the tenant's
in-flight gauge, one upstream attempt, queue wait, the request itself; for a stream
also its open/close, a gap per delta and its tokens), timed in a loop. The waiting
gauge is left out: only requests that really queue touch it. Relate the difference to the gateway's
CPU per request from ``overhead.py`` (proxy CPU µs/req) for the share metrics take.

    python benchmarks/metrics_cost.py
"""

from __future__ import annotations

import statistics
import time

from claude_proxy.admission import Usage
from claude_proxy.observability import Metrics, NullMetrics

LOOPS, RUNS, DELTAS = 20_000, 7, 16
MODEL = "claude-sonnet-4-5"


def one_request(m: Metrics, stream: bool, usage: Usage) -> None:
    m.request_started()
    m.tenant_holding("default", 1)
    m.upstream_attempt("primary", "ok", 0.001)
    if stream:
        m.stream_opened()
        for _ in range(DELTAS):
            m.token_gap(0.001)
        m.stream_closed()
        m.tokens_used("default", MODEL, usage)
    m.tenant_holding("default", -1)
    m.queue_wait("default", 0.00001)
    m.request_finished(
        tenant="default", model=MODEL, stream=stream, status=200, duration=0.002,
        overhead=0.0003, ttft=0.001 if stream else None, usage=None if stream else usage,
    )  # fmt: skip


def microseconds(kind: type[Metrics], stream: bool) -> float:
    metrics, usage, runs = kind(), Usage(16, 16), []
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(LOOPS):
            one_request(metrics, stream, usage)
        runs.append((time.perf_counter() - started) / LOOPS * 1e6)
    return statistics.median(runs)


def main() -> None:
    print(f"| request | metrics µs | null µs | cost µs/request |  (median of {RUNS} x {LOOPS})")
    print("|---|---|---|---|")
    for stream in (False, True):
        full, null = microseconds(Metrics, stream), microseconds(NullMetrics, stream)
        label = f"stream ({DELTAS} deltas)" if stream else "json"
        print(f"| {label} | {full:.1f} | {null:.1f} | {full - null:.1f} |")


if __name__ == "__main__":
    main()
