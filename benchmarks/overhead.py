"""Measure what claude-proxy adds over calling the simulator directly, and over a bare proxy.

Three targets are measured in the same run, interleaved round by round so that
machine noise hits them alike: ``direct`` (load -> simulator), ``floor`` (load ->
benchmarks/passthrough.py -> simulator) and ``gateway`` (load -> claude-proxy ->
simulator). Proxies run on core 0; the simulator and the load generator share
core 1, so the proxies' CPU time per request is reported too: when core 1 is the
bottleneck, req/s understates the difference and CPU per request does not.

    python benchmarks/overhead.py                  # 3 rounds x 3 s per cell, a few minutes
    python benchmarks/overhead.py --quick          # 1 round x 1 s, a smoke check
    python benchmarks/overhead.py --metrics-cost   # also the gateway without its request
                                                   # log, and without metrics either
    python benchmarks/overhead.py --resume-cost    # also the gateway with plain streams
    python benchmarks/overhead.py --baseline DIR   # also the gateway of another checkout
                                                   # (git worktree add DIR <commit>)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _procs import (
    Proc,
    cpu_seconds,
    free_port,
    rss_mb,
    run_benchmark,
    spawn,
    stop,
    wait_listening,
    wait_ready,
)
from _report import (
    BASELINE_TARGETS,
    COST_TARGETS,
    RESUME_TARGETS,
    TARGETS,
    Sample,
    baseline_table,
    checks,
    cost_table,
    derived_table,
    render_checks,
    results_table,
    resume_cost_table,
    saturation_note,
)

HERE = Path(__file__).resolve().parent
PROXY_CORE, LOAD_CORE = 0, 1
API_KEY = "sk-ant-benchmark-key"
MAX_REQUESTS = 1_000_000  # per measurement; the duration is the real bound


@dataclass(frozen=True, slots=True)
class Options:
    rounds: int
    duration: float
    warmup: float
    concurrency: list[int]
    modes: list[str]
    json_out: str | None
    targets: tuple[str, ...] = TARGETS
    baseline: str | None = None  # another checkout's root, for gateway-baseline


@dataclass(slots=True)
class Cluster:
    """The running processes, and where each target listens."""

    sim: Proc
    proxies: dict[str, Proc]  # every target but direct
    load: Proc
    sim_url: str
    urls: dict[str, str]

    @property
    def gateway(self) -> Proc:
        return self.proxies["gateway"]

    def proxy(self, target: str) -> Proc | None:
        return self.proxies.get(target)

    def run_load(
        self, target: str, stream: bool, concurrency: int, duration: float
    ) -> dict[str, Any]:
        job = {
            "url": self.urls[target],
            "stream": stream,
            "concurrency": concurrency,
            "duration": duration,
            "max_requests": MAX_REQUESTS,
            "api_key": API_KEY,
        }
        stdin, stdout = self.load.popen.stdin, self.load.popen.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("load generator was started without pipes")
        stdin.write(json.dumps(job).encode() + b"\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"load generator died:\n{self.load.log_tail()}")
        result: dict[str, Any] = json.loads(line)
        return result


# The gateway variants of --metrics-cost: the same process without its request log
# (info lines cost a few µs each), and without metrics either.
VARIANT_CONFIG = {
    "gateway-nolog": "log: {level: warning}\n",
    "gateway-bare": "log: {level: warning}\nmetrics: {enabled: false}\n",
    "gateway-noresume": "streams: {resumable: false}\n",
}


# Runs the CLI of whichever claude_proxy is first on PYTHONPATH.
_CLI_OF_PATH = "import sys; from claude_proxy.cli import main; sys.exit(main())"


@contextlib.contextmanager
def running_cluster(targets: tuple[str, ...], baseline: str | None = None) -> Iterator[Cluster]:
    """Start every process once, wait until each is ready, stop them all on the way out."""
    python, cli = sys.executable, str(Path(sys.executable).with_name("claude-proxy"))
    sim_port, floor_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    procs: list[Proc] = []
    with contextlib.ExitStack() as files:
        try:
            # The argument strings hold no spaces, so split() is a safe way to list them.
            sim_args = f"simulate --host 127.0.0.1 --port {sim_port} --speed 0 --api-key {API_KEY}"
            procs.append(sim := spawn("simulator", LOAD_CORE, [cli, *sim_args.split()]))
            ports = {"direct": sim_port, "floor": floor_port}
            proxies: dict[str, Proc] = {}
            gw_env = {"ANTHROPIC_API_KEY": API_KEY}
            for target in (t for t in targets if t.startswith("gateway")):
                ports[target] = port = free_port()
                gw_args = f"serve --host 127.0.0.1 --port {port} --upstream {sim_url}"
                if target in VARIANT_CONFIG:
                    config = files.enter_context(tempfile.NamedTemporaryFile("w", suffix=".yaml"))
                    config.write(VARIANT_CONFIG[target])
                    config.flush()
                    gw_args += f" --config {config.name}"
                argv = [cli, *gw_args.split()]
                env = gw_env
                if target in BASELINE_TARGETS and baseline is not None:
                    argv = [python, "-c", _CLI_OF_PATH, *gw_args.split()]
                    env = {**gw_env, "PYTHONPATH": str(Path(baseline) / "src")}
                procs.append(proxies.setdefault(target, spawn(target, PROXY_CORE, argv, env=env)))
            floor_argv = [python, str(HERE / "passthrough.py"), "--port", str(floor_port)]
            floor_argv += ["--upstream", sim_url]
            procs.append(proxies.setdefault("floor", spawn("floor", PROXY_CORE, floor_argv)))
            load_argv = [python, str(HERE / "_load.py")]
            procs.append(load := spawn("load", LOAD_CORE, load_argv, pipe=True))
            wait_ready(sim, f"{sim_url}/sim/stats")
            for target, proc in proxies.items():
                if target == "floor":
                    wait_listening(proc, floor_port)
                else:
                    wait_ready(proc, f"http://127.0.0.1:{ports[target]}/readyz")
            urls = {name: f"http://127.0.0.1:{port}/v1/messages" for name, port in ports.items()}
            yield Cluster(sim, proxies, load, sim_url, urls)
        finally:
            for proc in reversed(procs):
                stop(proc)


def measure(
    cluster: Cluster, round_: int, mode: str, conc: int, target: str, duration: float
) -> Sample:
    proxy = cluster.proxy(target)
    core1 = (cluster.sim.pid, cluster.load.pid)
    proxy_cpu0 = cpu_seconds(proxy.pid) if proxy else 0.0
    core1_cpu0 = sum(map(cpu_seconds, core1))
    wall0 = time.monotonic()
    result = cluster.run_load(target, mode == "stream", conc, duration)
    wall = time.monotonic() - wall0
    proxy_cpu = cpu_seconds(proxy.pid) - proxy_cpu0 if proxy else None
    requests = result["requests"] + result["errors"]
    if result["errors"]:
        print(
            f"  ! {target} {mode} c={conc}: {result['errors']} errors, e.g. "
            f"{result['error_samples']}",
            file=sys.stderr,
        )
    return Sample(
        round=round_,
        mode=mode,
        concurrency=conc,
        target=target,
        requests=result["requests"],
        errors=result["errors"],
        rps=result["rps"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        ttfb_p50_ms=result["ttfb_p50_ms"],
        proxy_cpu_us=proxy_cpu / requests * 1e6 if proxy_cpu is not None and requests else None,
        proxy_busy=proxy_cpu / wall if proxy_cpu is not None else None,
        core1_busy=(sum(map(cpu_seconds, core1)) - core1_cpu0) / wall,
    )


def warm_up(cluster: Cluster, opts: Options) -> None:
    """Open the pools (load -> target, proxy -> simulator) and let caches settle."""
    for target in opts.targets:
        for mode in opts.modes:
            cluster.run_load(target, mode == "stream", max(opts.concurrency), opts.warmup)


def run_rounds(cluster: Cluster, opts: Options) -> list[Sample]:
    samples = []
    cells = [(mode, conc) for mode in opts.modes for conc in opts.concurrency]
    for round_ in range(opts.rounds):
        for index, (mode, conc) in enumerate(cells):
            # Rotate the order so no target always runs first (or right after another).
            targets = opts.targets
            shift = (round_ + index) % len(targets)
            for target in targets[shift:] + targets[:shift]:
                sample = measure(cluster, round_, mode, conc, target, opts.duration)
                print(
                    f"  round {round_ + 1}/{opts.rounds} {mode:6} c={conc:<3} {target:13} "
                    f"{sample.rps:7.0f} req/s  p50 {sample.p50_ms or 0:6.2f} ms",
                    file=sys.stderr,
                )
                samples.append(sample)
    return samples


def sim_stats(cluster: Cluster) -> Any:
    url = f"{cluster.sim_url}/sim/stats"
    with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())
    return None


def benchmark(opts: Options) -> int:
    with running_cluster(opts.targets, opts.baseline) as cluster:
        idle_rss = {name: rss_mb(proc.pid) for name, proc in cluster.proxies.items()}
        warm_up(cluster, opts)
        samples = run_rounds(cluster, opts)
        final_rss = {name: rss_mb(proc.pid) for name, proc in cluster.proxies.items()}
        stats = sim_stats(cluster)
    results = checks(samples, idle_rss["gateway"])
    print(
        f"# claude-proxy overhead: {opts.rounds} round(s) x {opts.duration:g} s per cell, "
        f"medians of rounds; proxies on core {PROXY_CORE}, simulator + load on core {LOAD_CORE}\n"
    )
    print(results_table(samples, opts.modes, opts.concurrency, opts.targets) + "\n")
    print(
        "Added latency vs direct and gateway/floor ratios: median over rounds of paired values.\n"
    )
    print(derived_table(samples, opts.modes, opts.concurrency) + "\n")
    print(saturation_note(samples) + "\n")
    if set(COST_TARGETS) <= set(opts.targets):
        print(
            "What the request log and metrics cost: the full gateway (info log, metrics) "
            "against itself with log level warning (nolog) and with metrics off too (bare); "
            "median over rounds of paired values.\n"
        )
        print(cost_table(samples, opts.modes, opts.concurrency) + "\n")
    if set(RESUME_TARGETS) <= set(opts.targets) and "stream" in opts.modes:
        print(
            "What resumable streams cost: the full gateway against itself with "
            "streams.resumable false (relayed straight to the client, no generation task or "
            "replay log); median over rounds of paired values.\n"
        )
        print(resume_cost_table(samples, opts.concurrency) + "\n")
    if set(BASELINE_TARGETS) <= set(opts.targets):
        print(
            f"This tree's gateway against the baseline's ({opts.baseline}), in the same rounds; "
            "median over rounds of paired values.\n"
        )
        print(baseline_table(samples, opts.modes, opts.concurrency) + "\n")
    if isinstance(stats, dict) and stats.get("requests"):
        print(
            f"Simulator served {stats['requests']} requests, "
            f"{stats.get('output_tokens', 0) / stats['requests']:.1f} output tokens each.\n"
        )
    print("| process | RSS idle MB | RSS after run MB |\n|---|---|---|")
    for name in idle_rss:
        print(f"| {name} | {idle_rss[name]:.1f} | {final_rss[name]:.1f} |")
    print("\n" + render_checks(results))
    if opts.json_out:
        raw = {
            "options": dataclasses.asdict(opts),
            "idle_rss_mb": idle_rss,
            "final_rss_mb": final_rss,
            "sim_stats": stats,
            "samples": [dataclasses.asdict(s) for s in samples],
            "checks": [dataclasses.asdict(c) for c in results],
        }
        Path(opts.json_out).write_text(json.dumps(raw, indent=2))
    return 0 if all(c.passed is not False for c in results) else 1


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell (default 3)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma list (default 1,16,64)")
    parser.add_argument("--modes", default="json,stream", help="json, stream or both")
    parser.add_argument("--json-out", metavar="FILE", help="write raw samples as JSON")
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 round of 1 s")
    parser.add_argument(
        "--metrics-cost",
        action="store_true",
        help="also measure the gateway without its request log, and without metrics",
    )
    parser.add_argument(
        "--resume-cost",
        action="store_true",
        help="also measure the gateway with plain (not resumable) streams",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also measure the gateway of another checkout (e.g. a git worktree of an "
        "earlier commit), to compare in the same run",
    )
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"json", "stream"}:
        parser.error("--modes takes json, stream or json,stream")
    rounds, duration = (1, 1.0) if args.quick else (args.rounds, args.duration)
    return Options(
        rounds=rounds,
        duration=duration,
        warmup=min(1.0, duration),
        concurrency=[int(c) for c in args.concurrency.split(",")],
        modes=modes,
        json_out=args.json_out,
        targets=(
            TARGETS
            + (COST_TARGETS if args.metrics_cost else ())
            + (RESUME_TARGETS if args.resume_cost else ())
            + (BASELINE_TARGETS if args.baseline else ())
        ),
        baseline=args.baseline,
    )


def main() -> int:
    opts = parse_args()
    return run_benchmark(lambda: benchmark(opts))


if __name__ == "__main__":
    sys.exit(main())
