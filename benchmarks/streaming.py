"""Streaming through claude-proxy: per-event latency, SSE vs WebSocket, and open-stream capacity.

Three targets, interleaved round by round so that machine noise hits them alike:
``direct-sse`` (load -> simulator), ``gateway-sse`` (load -> claude-proxy, SSE ->
simulator) and ``gateway-ws`` (load -> claude-proxy's /v1/ws WebSocket -> simulator). The
gateway runs on core 0; the simulator and the load generator (benchmarks/_stream_load.py)
share core 1. Every answer is the same 64 text deltas: the simulator groups 1-4 tokens per
delta, seeded by the conversation, so the benchmark reads that grouping once and asks for
exactly the tokens of the first 64 deltas (``x-sim-answer-tokens``).

Phases, each with fresh processes (the burst runs first, as it also reads the grouping):
1. paced: the simulator's per-token delay (``--token-ms``) set so that deltas come 20 ms
   apart on average; time to first event, gaps between deltas, and each event's arrival
   compared with the same event on the direct streams (the gateway's added delay);
2. burst: simulator at speed 0, time to the last event of the 64-delta answer;
3. capacity: N SSE streams open at once through one gateway process, about one delta per
   second each: the gateway's RSS with all of them open, gaps added versus the pacing.

    python benchmarks/streaming.py            # about 6 minutes
    python benchmarks/streaming.py --quick    # a smoke check, well under a minute
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _procs import rss_mb, run_benchmark
from _report import Check, render_checks
from _stream_answer import DELTAS, EVENTS, calibrate
from _stream_capacity import Capacity, run_capacity
from _stream_cluster import GATEWAY_CONFIG, LOAD_CORE, PROXY_CORE, running_cluster
from _stream_latency import Phase, run_latency_phase
from _stream_stats import Stats, median
from _stream_tables import (
    _f,
    added_table,
    capacity_checks,
    capacity_table,
    claim_lines,
    feasibility,
    results_table,
    saturation,
)

# --no-resume: SSE without event ids and replay log, as the WebSocket always is.
NO_RESUME_CONFIG = "streams: {resumable: false}\n"
PHASES = ("paced", "burst", "capacity")


@dataclass(frozen=True, slots=True)
class Options:
    rounds: int
    paced_concurrency: list[int]
    paced_duration: float
    burst_concurrency: list[int]
    burst_duration: float
    gap_ms: float
    ttft_ms: float
    capacity: list[int]
    capacity_gap_ms: float
    open_rate: float
    hold: float
    capacity_direct: bool
    phases: list[str]
    resumable: bool
    json_out: str | None
    gateway_extra: str = ""


def benchmark(opts: Options) -> int:
    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    began = time.monotonic()
    samples: list[Stats] = []
    # Burst first: the same processes read the answer's grouping into deltas, which does
    # not depend on the pacing.
    config = GATEWAY_CONFIG + ("" if opts.resumable else NO_RESUME_CONFIG) + opts.gateway_extra
    with running_cluster("--speed 0", config) as cluster:
        answer = calibrate(cluster)
        tokens = answer.tokens_for(DELTAS)
        if "burst" in opts.phases:
            burst = Phase("burst", opts.burst_concurrency, opts.burst_duration, 0.0, [0.0] * DELTAS)
            samples += run_latency_phase(cluster, burst, tokens, opts.rounds, log)
    token_ms = opts.gap_ms * DELTAS / tokens
    paced_schedule = answer.schedule(DELTAS, token_ms)
    stream_s = (opts.ttft_ms + sum(paced_schedule)) / 1000.0
    log(f"answer: {DELTAS} deltas = {tokens} tokens; paced at {token_ms:.3f} ms per token")
    paced_flags = f"--speed 1 --ttft-ms {opts.ttft_ms:g} --token-ms {token_ms:.6f}"
    if "paced" in opts.phases:
        with running_cluster(paced_flags, config) as cluster:
            paced = Phase(
                "paced", opts.paced_concurrency, opts.paced_duration, stream_s, paced_schedule
            )
            samples += run_latency_phase(cluster, paced, tokens, opts.rounds, log)
    log(f"latency phases done after {time.monotonic() - began:.0f} s")
    # Phase 3: capacity, one delta per capacity_gap_ms on average.
    cap_token_ms = opts.capacity_gap_ms * DELTAS / tokens
    capacity: list[Capacity] = []
    idle_rss = final_rss = 0.0
    core1_cost: float | None = None
    if "capacity" in opts.phases:
        cap_flags = f"--speed 1 --ttft-ms 0 --token-ms {cap_token_ms:.6f}"
        with running_cluster(cap_flags, config) as cluster:
            idle_rss = rss_mb(cluster.gateway.pid)
            plan = [("gateway-sse", n) for n in opts.capacity]
            if opts.capacity_direct:
                plan.append(("direct-sse", max(opts.capacity)))
            for target, n in plan:
                row = run_capacity(cluster, target, n, answer, cap_token_ms, opts)
                capacity.append(row)
                log(
                    f"  capacity {target} N={n}: {row.completed} done, {row.errors} errors, "
                    f"all open at {_f(row.all_open_s, '.1f')} s for {row.window_s:.1f} s, "
                    f"RSS {_f(row.rss_open_mb, '.0f')} MB, gap-pacing p99 {_f(row.gap_p99)} ms"
                )
                if row.errors:
                    log(f"  ! e.g. {row.error_samples}")
            final_rss = rss_mb(cluster.gateway.pid)
        core1_cost = median(
            [r.core1_us_per_event for r in capacity if r.target == "direct-sse"]
            or [r.core1_us_per_event for r in capacity]
        )
    elapsed = time.monotonic() - began

    print(
        f"# claude-proxy streaming: {opts.rounds} interleaved round(s), medians of rounds; "
        f"gateway on core {PROXY_CORE}, simulator + load generator on core {LOAD_CORE}\n"
    )
    print(
        f"Every stream: {DELTAS} text deltas = {tokens} tokens (the simulator groups 1-4 tokens "
        f"per delta), {EVENTS} events. Gateway configuration: `log: {{level: warning}}` (no "
        "per-request log lines in the measurement) and `upstream_max_concurrent: 20000` (the "
        "default 64 would queue the streams beyond 64)"
        + (
            "; everything else default, so SSE through the gateway is resumable (an `id:` "
            "per event, an in-memory replay log) and the WebSocket is not. "
            if opts.resumable
            else ", and `streams: {resumable: false}` (--no-resume): neither SSE nor the "
            "WebSocket keeps a replay log. "
        )
        + "Workers start spread over one stream's length and run streams "
        "back to back (SSE: a keep-alive connection each; WebSocket: one socket each, "
        "requests one after another on it). Load generator: aiohttp, unlimited connector.\n"
    )
    print(
        "TTFE = request sent -> message_start received; TTLE = -> message_stop; gap = between "
        "consecutive text deltas, as received; gap-sched = gap minus its scheduled value; "
        "event vs direct = each event's arrival (since its request was sent) minus the median "
        "arrival of the same event on the direct streams of that round, pooled over all "
        "events of all streams; µs/event = CPU per event delivered; + columns = target minus "
        "direct, paired per round, median of rounds.\n"
    )
    if "paced" in opts.phases:
        print(
            f"## 1. Paced: {opts.gap_ms:g} ms per delta on average (simulator --token-ms "
            f"{token_ms:.3f}: 1-4 tokens = {token_ms:.1f}-{4 * token_ms:.1f} ms between deltas; "
            f"--ttft-ms {opts.ttft_ms:g}; a stream lasts ~{stream_s:.2f} s)\n"
        )
        print(results_table(samples, "paced", opts.paced_concurrency) + "\n")
        print(added_table(samples, "paced", opts.paced_concurrency) + "\n")
        print(saturation(samples, "paced") + "\n")
        print(feasibility(samples, opts, stream_s))
    if "burst" in opts.phases:
        print("## 2. Burst: simulator at --speed 0, all 70 events at once\n")
        print(results_table(samples, "burst", opts.burst_concurrency) + "\n")
        print(added_table(samples, "burst", opts.burst_concurrency) + "\n")
        print(saturation(samples, "burst") + "\n")
    if "capacity" in opts.phases:
        print(
            "## 3. Capacity: N SSE streams open at once through one gateway process\n\n"
            f"Pacing: --token-ms {cap_token_ms:.1f}, one delta per "
            f"{opts.capacity_gap_ms / 1000:g} s on average ({cap_token_ms / 1000:.2f}-"
            f"{4 * cap_token_ms / 1000:.2f} s). Why so slow: the simulator and the load "
            f"generator share core 1 and cost {_f(core1_cost, '.0f')} µs of CPU per event "
            "between them, their streams' opening included (direct row below): 5,000 streams "
            "at one delta per second would need "
            f"~{_f(None if core1_cost is None else core1_cost * 5000 / 1e4, '.0f')} % of "
            "core 1, and its own lag would be measured as the gateway's. Streams are "
            f"opened evenly at {opts.open_rate:g}/s (faster saturates core 1 as well) and last "
            f"long enough to be open all together for ~{opts.hold:g} s. gap-pacing = each gap "
            "between deltas minus its scheduled value, over the gaps inside the window in "
            f"which all N were open. Gateway RSS idle {idle_rss:.0f} MB, {final_rss:.0f} MB "
            "after the phase (finished streams stay in its replay log). The simulator runs "
            "with cyclic GC off (benchmarks/_sim.py), so that its pauses are not measured.\n"
        )
        print(capacity_table(capacity) + "\n")
    claim, claim_holds = claim_lines(samples, opts)
    print("## 4. The target: WebSocket 'cuts latency overhead by 60 % compared with HTTP'\n")
    print("The gateway's added latency versus direct, SSE vs WebSocket (paired medians):\n")
    print("\n".join(f"- {line}" for line in claim) + "\n")
    verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT MEASURED"}[claim_holds]
    print(f"Claim: {verdict} on these figures.\n")
    results = capacity_checks(capacity)
    errors = sum(s.errors for s in samples) + sum(r.errors for r in capacity)
    results.append(Check("no errors", errors == 0, f"{errors} errors"))
    results.append(
        Check(
            "WebSocket cuts the gateway's added latency by ≥ 60 % vs SSE (the target)",
            claim_holds,
            "section 4",
        )
    )
    print(render_checks(results))
    print(f"\n(run took {elapsed:.0f} s)")
    if opts.json_out:
        raw = {
            "options": dataclasses.asdict(opts),
            "delta_tokens": answer.delta_tokens[:DELTAS],
            "samples": [dataclasses.asdict(s) for s in samples],
            "capacity": [dataclasses.asdict(c) for c in capacity],
            "checks": [dataclasses.asdict(c) for c in results],
        }
        Path(opts.json_out).write_text(json.dumps(raw, indent=2))
    # The claim is the design note's, not a target of the gateway: it does not fail the run.
    return 0 if all(c.passed is not False for c in results[:-1]) else 1


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--paced-concurrency", type=_int_list, default=[1, 10, 100])
    parser.add_argument(
        "--paced-duration", type=float, default=3.0, help="seconds per cell (c=1: twice)"
    )
    parser.add_argument("--burst-concurrency", type=_int_list, default=[1])
    parser.add_argument("--burst-duration", type=float, default=2.0, help="seconds per cell")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="paced: mean ms per delta")
    parser.add_argument("--ttft-ms", type=float, default=20.0, help="paced: simulator TTFT")
    parser.add_argument("--capacity", type=_int_list, default=[1000, 2000, 5000])
    parser.add_argument("--capacity-gap-ms", type=float, default=2000.0)
    parser.add_argument("--open-rate", type=float, default=250.0, help="streams opened per s")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds all N stay open")
    parser.add_argument(
        "--no-capacity-direct",
        action="store_true",
        help="skip the direct reference at the largest N",
    )
    parser.add_argument(
        "--phases",
        type=lambda text: [p.strip() for p in text.split(",") if p.strip()],
        default=list(PHASES),
        help="comma list of paced, burst, capacity (default all)",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="gateway with streams.resumable false: SSE without ids and replay log, like the "
        "WebSocket (to see what resumability costs)",
    )
    parser.add_argument("--json-out", metavar="FILE", help="write raw results as JSON")
    parser.add_argument(
        "--gateway-config", metavar="FILE", help="YAML appended to the gateway's configuration"
    )
    parser.add_argument("--quick", action="store_true", help="smoke check, well under a minute")
    args = parser.parse_args(argv)
    if set(args.phases) - set(PHASES):
        parser.error(f"--phases takes {', '.join(PHASES)}")
    common = {
        "gap_ms": args.gap_ms,
        "ttft_ms": args.ttft_ms,
        "phases": args.phases,
        "resumable": not args.no_resume,
        "gateway_extra": Path(args.gateway_config).read_text() if args.gateway_config else "",
        "json_out": args.json_out,
    }
    if args.quick:
        return Options(
            rounds=1,
            paced_concurrency=[1, 100],
            paced_duration=0.75,
            burst_concurrency=[1],
            burst_duration=0.5,
            capacity=[500],
            capacity_gap_ms=500.0,
            open_rate=400.0,
            hold=1.5,
            capacity_direct=False,
            **common,
        )
    return Options(
        rounds=args.rounds,
        paced_concurrency=args.paced_concurrency,
        paced_duration=args.paced_duration,
        burst_concurrency=args.burst_concurrency,
        burst_duration=args.burst_duration,
        capacity=args.capacity,
        capacity_gap_ms=args.capacity_gap_ms,
        open_rate=args.open_rate,
        hold=args.hold,
        capacity_direct=not args.no_capacity_direct,
        **common,
    )


def main() -> int:
    # Children inherit the limit: thousands of sockets in the gateway and the load generator.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    opts = parse_args()
    return run_benchmark(lambda: benchmark(opts))


if __name__ == "__main__":
    sys.exit(main())
