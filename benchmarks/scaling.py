"""Does claude-proxy scale: in memory and on Redis, with one worker and two, and on streams.

Every process runs unpinned, load generator included, as a gateway on a small host
would: the question is what the gateway gets out of the cores there are. The upstream
is benchmarks/_mock_upstream.py (canned answers, almost no CPU), so the gateway and
Redis, not the simulator, decide the figures. Targets, measured one at a time in
interleaved rounds (the order rotates each round), medians of rounds reported:

- ``direct`` (load -> mock) and ``floor`` (load -> benchmarks/passthrough.py -> mock);
- ``memory`` (one gateway process, memory state), ``redis`` (one process, ``state:
  redis://``), ``redis-2w`` (``--workers 2`` on Redis);
- ``baseline`` with ``--baseline DIR``: another checkout's gateway on Redis, in the JSON,
  stream and paced phases (before/after a change, in the same rounds).

Phases:
1. json: non-streaming req/s at c=64; gateway CPU per request (all its processes), Redis's
   and the load generator's, and the commands Redis ran per request (INFO commandstats,
   scripts' inner commands included). The load generator runs on raw protocols here
   (``_load.py``'s ``raw`` jobs): aiohttp's client would take ~0.1 ms of the two cores a
   request, a quarter of the gateway's own, from the workers it is meant to measure;
2. streams: streams/s at c=16 with 26 and with 500 events, gateway CPU per event
   against the floor's; time to the first text delta at c=1 (TTFT), added over direct;
3. paced: one delta every 20 ms, 50 events a stream, at c=1 and c=100: each event's
   delay from the moment the mock wrote it, added over direct, gateway against floor;
4. replay memory: RSS of the memory gateway before and after N resumable streams.

    python benchmarks/scaling.py             # about 6 minutes
    python benchmarks/scaling.py --quick     # a smoke check, about a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis
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
from _report import Check, render_checks

HERE = Path(__file__).resolve().parent
ALL_CORES = "0-255"  # taskset clips this to the cores the machine has
API_KEY = "sk-ant-benchmark-key"
REDIS_URL = "redis://127.0.0.1:6379/0"
JSON_TARGETS = ("direct", "floor", "memory", "redis", "redis-2w")
STREAM_TARGETS = ("direct", "floor", "memory", "redis")
GATEWAYS = {"memory": (1, False), "redis": (1, True), "redis-2w": (2, True)}
# Runs the CLI of whichever claude_proxy is first on PYTHONPATH.
_CLI_OF_PATH = "import sys; from claude_proxy.cli import main; sys.exit(main())"
PHASES = ("json", "streams", "paced", "replay")
PACE_MS = 20.0
PACED_EVENTS = 50


@dataclass(frozen=True, slots=True)
class Options:
    rounds: int
    duration: float
    json_concurrency: int
    stream_concurrency: int
    paced_concurrency: list[int]
    paced_seconds: float
    replay_streams: int
    phases: tuple[str, ...] = PHASES
    baseline: str | None = None  # another checkout's root: its gateway on Redis, as "baseline"
    json_client: str = "raw"  # the JSON phase's load generator: "raw" or "aiohttp"

    @property
    def json_targets(self) -> tuple[str, ...]:
        return (*JSON_TARGETS, "baseline") if self.baseline else JSON_TARGETS

    @property
    def stream_targets(self) -> tuple[str, ...]:
        return (*STREAM_TARGETS, "baseline") if self.baseline else STREAM_TARGETS


@dataclass(slots=True)
class Cluster:
    procs: dict[str, Proc]
    urls: dict[str, str]
    load: Proc
    redis: redis.Redis
    redis_pid: int

    def run(
        self,
        target: str,
        *,
        stream: bool,
        concurrency: int,
        duration: float,
        headers: dict[str, str] | None = None,
        max_requests: int = 10_000_000,
        raw: bool = False,
    ) -> dict[str, Any]:
        job = {
            "url": self.urls[target],
            "stream": stream,
            "concurrency": concurrency,
            "duration": duration,
            "max_requests": max_requests,
            "api_key": API_KEY,
            "headers": headers or {},
            "raw": raw,
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
        if result["errors"]:
            print(
                f"  ! {target}: {result['errors']} errors, e.g. {result['error_samples']}",
                file=sys.stderr,
            )
        return result

    def gateway_cpu(self, target: str) -> float:
        if target == "direct":
            return 0.0
        return sum(cpu_seconds(pid) for pid in _tree(self.procs[target].pid))

    def redis_calls(self) -> int:
        stats = self.redis.info("commandstats")
        return sum(int(v["calls"]) for v in stats.values())


def _machine_busy() -> float:
    """CPU seconds every core has spent on anything but idling, since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor and its workers)."""
    pids, index = [pid], 0
    while index < len(pids):
        children = f"/proc/{pids[index]}/task/{pids[index]}/children"
        with contextlib.suppress(OSError), open(children) as f:
            pids.extend(int(p) for p in f.read().split())
        index += 1
    return pids


@contextlib.contextmanager
def running_cluster(baseline: str | None) -> Iterator[Cluster]:
    cli = str(Path(sys.executable).with_name("claude-proxy"))
    python = sys.executable
    prefix = f"bench-scaling-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    procs: dict[str, Proc] = {}
    ports: dict[str, int] = {}
    with contextlib.ExitStack() as files:
        try:
            ports["direct"] = mock_port = free_port()
            mock_argv = [python, str(HERE / "_mock_upstream.py"), "--port", str(mock_port)]
            procs["direct"] = spawn("mock", ALL_CORES, mock_argv)
            mock_url = f"http://127.0.0.1:{mock_port}"
            ports["floor"] = free_port()
            floor_argv = [python, str(HERE / "passthrough.py"), "--port", str(ports["floor"])]
            procs["floor"] = spawn("floor", ALL_CORES, [*floor_argv, "--upstream", mock_url])
            gateways = {**GATEWAYS, **({"baseline": (1, True)} if baseline else {})}
            for name, (workers, shared) in gateways.items():
                config = files.enter_context(tempfile.NamedTemporaryFile("w", suffix=".yaml"))
                # Room for the paced phase's 100 streams at once, as the floor has.
                config.write("upstream_max_concurrent: 256\n")
                if shared:
                    config.write(f"state: {REDIS_URL}\n")
                    config.write(f"admission: {{key_prefix: '{prefix}{name}:admission:'}}\n")
                config.flush()
                ports[name] = port = free_port()
                argv = [cli, "serve", "--host", "127.0.0.1", "--port", str(port)]
                argv += ["--upstream", mock_url, "--config", config.name]
                argv += ["--workers", str(workers)]
                env = {"ANTHROPIC_API_KEY": API_KEY}
                if name == "baseline" and baseline:
                    argv = [python, "-c", _CLI_OF_PATH, *argv[1:]]
                    env["PYTHONPATH"] = str(Path(baseline) / "src")
                procs[name] = spawn(name, ALL_CORES, argv, env=env)
            load = spawn("load", ALL_CORES, [python, str(HERE / "_load.py")], pipe=True)
            wait_listening(procs["direct"], mock_port)
            wait_listening(procs["floor"], ports["floor"])
            for name in gateways:
                wait_ready(procs[name], f"http://127.0.0.1:{ports[name]}/readyz")
            urls = {name: f"http://127.0.0.1:{port}/v1/messages" for name, port in ports.items()}
            redis_pid = int(client.info("server")["process_id"])
            yield Cluster(procs, urls, load, client, redis_pid)
        finally:
            for proc in procs.values():
                stop(proc)
            with contextlib.suppress(NameError):
                stop(load)
            with contextlib.suppress(redis.RedisError):
                for key in client.scan_iter(f"{prefix}*", count=1000):
                    client.delete(key)
            client.close()


# -- measurements ------------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    """One target in one cell: a value per round for each measure."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, **measures: float | None) -> None:
        for name, value in measures.items():
            if value is not None:
                self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float | None:
        got = self.values.get(name)
        return statistics.median(got) if got else None


Cells = dict[tuple[str, str], Cell]  # (cell name, target) -> values


@dataclass(frozen=True, slots=True)
class Measured:
    result: dict[str, Any]
    gateway_cpu: float  # seconds, all the target's processes
    redis_cpu: float
    machine_cpu: float  # every process on the machine: load generator, mock, Redis, ...
    redis_calls: int
    load_cpu: float

    def per_request(self, value: float) -> float | None:
        n = self.result["requests"] + self.result["errors"]
        return value / n if n else None


def _measured(cluster: Cluster, target: str, **job: Any) -> Measured:
    cpu0, rcpu0 = cluster.gateway_cpu(target), cpu_seconds(cluster.redis_pid)
    calls0, busy0 = cluster.redis_calls(), _machine_busy()
    load0 = cpu_seconds(cluster.load.pid)
    result = cluster.run(target, **job)
    return Measured(
        result,
        cluster.gateway_cpu(target) - cpu0,
        cpu_seconds(cluster.redis_pid) - rcpu0,
        _machine_busy() - busy0,
        cluster.redis_calls() - calls0 - 1,  # the INFO itself
        cpu_seconds(cluster.load.pid) - load0,
    )


def _rotated(targets: tuple[str, ...], shift: int) -> tuple[str, ...]:
    shift %= len(targets)
    return targets[shift:] + targets[:shift]


def json_phase(cluster: Cluster, opts: Options, cells: Cells) -> None:
    raw = opts.json_client == "raw"
    for target in opts.json_targets:  # warm-up: pools open, caches settled
        cluster.run(target, stream=False, concurrency=opts.json_concurrency, duration=1.0, raw=raw)
    for round_ in range(opts.rounds):
        for target in _rotated(opts.json_targets, round_):
            m = _measured(
                cluster,
                target,
                stream=False,
                concurrency=opts.json_concurrency,
                duration=opts.duration,
                raw=raw,
            )
            ms = 1e3
            cells.setdefault(("json", target), Cell()).add(
                rps=m.result["rps"],
                cpu_ms=_scaled(m.per_request(m.gateway_cpu), ms),
                redis_ms=_scaled(m.per_request(m.redis_cpu), ms),
                machine_ms=_scaled(m.per_request(m.machine_cpu), ms),
                load_ms=_scaled(m.per_request(m.load_cpu), ms),
                redis_cmds=m.per_request(m.redis_calls),
                p50=m.result["p50_ms"],
            )
            print(
                f"  json {round_ + 1}/{opts.rounds} {target:9} {m.result['rps']:7.0f} req/s "
                f"cpu {_f(_scaled(m.per_request(m.gateway_cpu), ms), '.3f')} ms/req",
                file=sys.stderr,
            )


def stream_phase(cluster: Cluster, opts: Options, cells: Cells) -> None:
    for events in (26, 500):
        headers = {"x-mock-events": str(events)}
        for target in opts.stream_targets:
            cluster.run(
                target,
                stream=True,
                concurrency=opts.stream_concurrency,
                duration=1.0,
                headers=headers,
            )
        for round_ in range(opts.rounds):
            for target in _rotated(opts.stream_targets, round_):
                m = _measured(
                    cluster,
                    target,
                    stream=True,
                    concurrency=opts.stream_concurrency,
                    duration=opts.duration,
                    headers=headers,
                )
                result = m.result
                per_stream = m.per_request(m.gateway_cpu)
                first = cluster.run(
                    target,
                    stream=True,
                    concurrency=1,
                    duration=min(opts.duration, 2.0),
                    headers=headers,
                )
                cells.setdefault((f"stream-{events}", target), Cell()).add(
                    rps=result["rps"],
                    cpu_us_event=_scaled(per_stream, 1e6 / events),
                    ttft=first["ttft_p50_ms"],
                )
                print(
                    f"  streams {events} {round_ + 1}/{opts.rounds} {target:9} "
                    f"{result['rps']:6.0f} streams/s TTFT c=1 {first['ttft_p50_ms'] or 0:.2f} ms",
                    file=sys.stderr,
                )


async def _paced_streams(url: str, concurrency: int, seconds: float) -> tuple[list[float], int]:
    """Each delta's delay (ms) from when the mock wrote it to when it was read here, and
    how many streams failed (not 200, or no message_stop)."""
    delays: list[float] = []
    failed = 0
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "Hi"}],
        }
    )
    headers = {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": API_KEY,
        "x-mock-events": str(PACED_EVENTS),
        "x-mock-pace-ms": str(PACE_MS),
    }
    stream_s = PACED_EVENTS * PACE_MS / 1000.0

    async def worker(session: aiohttp.ClientSession, index: int, deadline: float) -> None:
        nonlocal failed
        await asyncio.sleep(stream_s * index / concurrency)  # spread the streams' phases
        while time.monotonic() < deadline:
            ended = False
            async with session.post(url, data=body, headers=headers) as response:
                async for line in response.content:
                    if line.startswith(b'data: {"type":"content_block_delta"'):
                        now = time.monotonic_ns()
                        sent = int(line.rsplit(b'"text":"', 1)[1].split(b" ", 1)[0])
                        delays.append((now - sent) / 1e6)
                    ended = ended or line.startswith(b"event: message_stop")
            failed += response.status != 200 or not ended

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(worker(session, i, deadline) for i in range(concurrency)))
    return delays, failed


def paced_phase(cluster: Cluster, opts: Options, cells: Cells) -> None:
    for conc in opts.paced_concurrency:
        for round_ in range(opts.rounds):
            for target in _rotated(opts.stream_targets, round_):
                url = cluster.urls[target]
                delays, failed = asyncio.run(_paced_streams(url, conc, opts.paced_seconds))
                if failed:
                    print(f"  ! paced c={conc} {target}: {failed} streams failed", file=sys.stderr)
                p50 = statistics.median(delays) if delays else None
                cells.setdefault((f"paced-{conc}", target), Cell()).add(delay=p50)
                print(
                    f"  paced c={conc} {round_ + 1}/{opts.rounds} {target:9} "
                    f"{len(delays)} events, delay p50 {p50 or 0:.3f} ms",
                    file=sys.stderr,
                )


def replay_phase(cluster: Cluster, opts: Options) -> tuple[float, float, float]:
    """RSS of the memory gateway before, after N resumable streams, and its peak."""
    proc = cluster.procs["memory"]
    before = rss_mb(proc.pid)
    peak, done = before, 0
    while done < opts.replay_streams:
        result = cluster.run(
            "memory",
            stream=True,
            concurrency=64,
            duration=60.0,
            max_requests=min(10_000, opts.replay_streams - done),
        )
        done += result["requests"] + result["errors"]
        peak = max(peak, rss_mb(proc.pid))
    return before, rss_mb(proc.pid), peak


# -- report ----------------------------------------------------------------------------


def _f(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def report(cells: Cells, opts: Options, replay: tuple[float, float, float] | None) -> list[Check]:
    def med(cell: str, target: str, name: str) -> float | None:
        got = cells.get((cell, target))
        return got.median(name) if got else None

    print(
        f"# claude-proxy scaling: {opts.rounds} interleaved rounds x {opts.duration:g} s, "
        "medians; every process unpinned on the same cores, mock upstream\n"
    )
    if "json" in opts.phases:
        print(f"JSON, c={opts.json_concurrency}, load generator: {opts.json_client}:\n")
        print(
            "| target | req/s | vs memory | gateway CPU ms/req | Redis CPU ms/req | "
            "Redis cmds/req | load generator CPU ms/req | machine CPU ms/req | p50 ms |"
            "\n|---|---|---|---|---|---|---|---|---|"
        )
        base = med("json", "memory", "rps")
        for target in opts.json_targets:
            rps = med("json", target, "rps")
            redis_side = target.startswith("redis") or target == "baseline"
            print(
                f"| {target} | {_f(rps, '.0f')} | {_f(_ratio(rps, base))} | "
                f"{_f(med('json', target, 'cpu_ms'), '.3f') if target != 'direct' else '-'} | "
                f"{_f(med('json', target, 'redis_ms'), '.3f') if redis_side else '-'} | "
                f"{_f(med('json', target, 'redis_cmds'), '.1f') if redis_side else '-'} | "
                f"{_f(med('json', target, 'load_ms'), '.3f')} | "
                f"{_f(med('json', target, 'machine_ms'), '.3f')} | "
                f"{_f(med('json', target, 'p50'))} |"
            )
    if "streams" in opts.phases:
        print(
            f"\nStreams (burst, written back to back by the mock), c={opts.stream_concurrency} "
            "for streams/s and CPU, c=1 for time to first text delta:\n"
        )
        print(
            "| events | target | streams/s | CPU µs/event | vs floor | TTFT ms | TTFT added ms |"
            "\n|---|---|---|---|---|---|---|"
        )
        for events in (26, 500):
            cell = f"stream-{events}"
            floor_cpu = med(cell, "floor", "cpu_us_event")
            direct_ttft = med(cell, "direct", "ttft")
            for target in opts.stream_targets:
                cpu = med(cell, target, "cpu_us_event") if target != "direct" else None
                ttft = med(cell, target, "ttft")
                added = (
                    None
                    if ttft is None or direct_ttft is None or target == "direct"
                    else ttft - direct_ttft
                )
                print(
                    f"| {events} | {target} | {_f(med(cell, target, 'rps'), '.0f')} | "
                    f"{_f(cpu, '.1f')} | {_f(_ratio(cpu, floor_cpu))} | {_f(ttft)} | {_f(added)} |"
                )
    if "paced" in opts.phases:
        print(
            f"\nPaced streams (a delta every {PACE_MS:g} ms, {PACED_EVENTS} events): median delay "
            "of an event from the mock's write to the client's read, and what each proxy adds "
            "over direct:\n"
        )
        print("| c | target | delay ms | added ms | vs floor's added |\n|---|---|---|---|---|")
        for conc in opts.paced_concurrency:
            cell = f"paced-{conc}"
            direct = med(cell, "direct", "delay")
            floor_added = None if direct is None else (med(cell, "floor", "delay") or 0) - direct
            for target in opts.stream_targets:
                delay = med(cell, target, "delay")
                added = (
                    None
                    if delay is None or direct is None or target == "direct"
                    else delay - direct
                )
                ratio = _ratio(added, floor_added) if target not in ("direct", "floor") else None
                print(
                    f"| {conc} | {target} | {_f(delay, '.3f')} | {_f(added, '.3f')} | {_f(ratio)} |"
                )
    if replay is not None:
        before, after, peak = replay
        print(
            f"\nReplay memory: the memory gateway's RSS {before:.0f} MB before "
            f"{opts.replay_streams:,} resumable streams (26 events, c=64), {after:.0f} MB "
            f"after, {peak:.0f} MB at most.\n"
        )

    results = []
    if "json" in opts.phases:
        mem, red, red2 = (med("json", t, "rps") for t in ("memory", "redis", "redis-2w"))
        for name, ratio, line in (
            ("1 worker on Redis >= 0.8x of 1 worker in memory (JSON)", _ratio(red, mem), 0.8),
            ("2 workers >= 1.3x of 1 worker, both on Redis (JSON)", _ratio(red2, red), 1.3),
        ):
            results.append(Check(name, None if ratio is None else ratio >= line, f"{_f(ratio)}x"))
    if "streams" in opts.phases:
        for events in (26, 500):
            cell = f"stream-{events}"
            for target in ("memory", "redis"):
                t, d = med(cell, target, "ttft"), med(cell, "direct", "ttft")
                added = None if t is None or d is None else t - d
                results.append(
                    Check(
                        f"TTFT added <= 1 ms at {events} events ({target})",
                        None if added is None else added <= 1.0,
                        f"{_f(added)} ms",
                    )
                )
                cpu = _ratio(med(cell, target, "cpu_us_event"), med(cell, "floor", "cpu_us_event"))
                results.append(
                    Check(
                        f"CPU per event <= 1.5x the floor's at {events} events ({target})",
                        None if cpu is None else cpu <= 1.5,
                        f"{_f(cpu)}x",
                    )
                )
    for conc in opts.paced_concurrency:
        cell = f"paced-{conc}"
        direct, floor = med(cell, "direct", "delay"), med(cell, "floor", "delay")
        for target in ("memory", "redis"):
            gw = med(cell, target, "delay")
            if None in (direct, floor, gw):
                continue
            added, floor_added = gw - direct, floor - direct  # type: ignore[operator]
            ratio = _ratio(added, floor_added)
            # A floor that beat direct is the host's noise: nothing to compare with.
            ok = None if floor_added <= 0 else added <= 1.5 * floor_added or added <= 0.05
            results.append(
                Check(
                    f"paced c={conc}: latency added per event <= 1.5x the floor's ({target})",
                    ok,
                    f"{_f(added, '.3f')} ms vs floor {_f(floor_added, '.3f')} ms ({_f(ratio)}x)",
                )
            )
    return results


def benchmark(opts: Options) -> int:
    cells: Cells = {}
    with running_cluster(opts.baseline) as cluster:
        phases = {"json": json_phase, "streams": stream_phase, "paced": paced_phase}
        for name, phase in phases.items():
            if name in opts.phases:
                print(f"{name} phase", file=sys.stderr)
                phase(cluster, opts, cells)
        replay = None
        if opts.replay_streams and "replay" in opts.phases:
            print(f"replay phase: {opts.replay_streams:,} streams", file=sys.stderr)
            replay = replay_phase(cluster, opts)
    results = report(cells, opts, replay)
    print("\n" + render_checks(results))
    return 0 if all(c.passed is not False for c in results) else 1


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per cell")
    parser.add_argument(
        "--replay-streams",
        type=int,
        default=100_000,
        help="resumable streams for the replay-memory phase (0: skip)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s, 5,000 streams")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also the gateway of another checkout, on Redis (JSON and stream phases)",
    )
    parser.add_argument("--phases", default=",".join(PHASES), help="comma list (default: all)")
    parser.add_argument(
        "--json-client",
        choices=("raw", "aiohttp"),
        default="raw",
        help="the JSON phase's load generator (aiohttp: as before 2026-12-03, ~0.1 ms of CPU "
        "a request more)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    return Options(
        rounds=1 if quick else args.rounds,
        duration=1.0 if quick else args.duration,
        json_concurrency=64,
        stream_concurrency=16,
        paced_concurrency=[1, 100],
        paced_seconds=2.0 if quick else 4.0,
        replay_streams=5_000 if quick else args.replay_streams,
        baseline=args.baseline,
        json_client=args.json_client,
        phases=tuple(p.strip() for p in args.phases.split(",") if p.strip() in PHASES),
    )


def main() -> int:
    opts = parse_args()
    return run_benchmark(lambda: benchmark(opts))


if __name__ == "__main__":
    sys.exit(main())
