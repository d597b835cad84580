"""Connection exhaustion: can a few clients' idle and half-sent connections lock everyone out?

Starts the simulator (`claude-proxy simulate --speed 0`) and a gateway with its default
settings as processes (the gateway alone on core 0, everything else on core 1). A normal
client from 127.0.0.1 probes it, 10 times a second each, with GET /healthz and a JSON
Messages call, every one on a new connection with a 5 s timeout: before, during and after
an attack of 20,000 idle sockets and 1,000 slowloris clients (a request head a byte a
second). The attackers run in helper processes (each has its own open-file limit) from
other loopback addresses; each of their connections reconnects 0.5-1.5 s after the
gateway closed or refused it, so the pressure never lets up.

Scenarios: `spread` (idle sockets from 127.0.0.2-5, slowloris from 127.0.0.6: the total
limit binds) and `one-address` (all of it from 127.0.0.2: the per-address limit binds).

    python benchmarks/exhaustion.py                  # both scenarios, about 3 minutes
    python benchmarks/exhaustion.py --baseline DIR   # also the gateway of another checkout
    python benchmarks/exhaustion.py --quick          # 2,000 + 100 connections, short phases
    python benchmarks/exhaustion.py attack ...       # (a helper process; see attack())
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _procs import Proc, cpu_seconds, free_port, rss_mb, run_benchmark, spawn, stop, wait_ready

GATEWAY_CORE, OTHER_CORE = 0, 1
API_KEY = "sk-ant-benchmark-key"
PROBE_TIMEOUT = 5.0
PROBES_PER_SECOND = 10
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux
MESSAGE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hello"}],
}
# Python running the CLI of whichever claude_proxy is first on PYTHONPATH (for --baseline).
CLI_OF_PATH = "import sys; from claude_proxy.cli import main; sys.exit(main())"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    idle_sources: list[str]  # one helper process each; the idle sockets split evenly
    slow_source: str


SCENARIOS = {
    "spread": Scenario("spread", [f"127.0.0.{n}" for n in (2, 3, 4, 5)], "127.0.0.6"),
    "one-address": Scenario("one-address", ["127.0.0.2"] * 4, "127.0.0.2"),
}


# ---- the attack: a helper process -------------------------------------------------------


class _Held(asyncio.Protocol):
    """One attacker connection: idle, or dripping a request head that never ends."""

    def __init__(self, slow: bool) -> None:
        self.slow = slow
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answer = b""
        self._timer: asyncio.TimerHandle | None = None
        self._sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.slow:
            transport.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")  # type: ignore[attr-defined]
            self._drip()

    def _drip(self) -> None:
        line = b"X-Slow: still sending\r\n"
        index = self._sent % len(line)
        self.transport.write(line[index : index + 1])  # type: ignore[attr-defined]
        self._sent += 1
        self._timer = asyncio.get_running_loop().call_later(1.0, self._drip)

    def data_received(self, data: bytes) -> None:
        self.answer = self.answer or data[:16]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.lost.done():
            self.lost.set_result(None)


async def _attacker(port: int, source: str, slow: bool, run: dict[str, Any]) -> None:
    loop, stats, held = asyncio.get_running_loop(), run["stats"], run["held"]
    while not run["stopping"]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The port is chosen at connect time, per destination: more than ~28,000 per address.
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        try:
            async with run["connecting"], asyncio.timeout(5.0):
                await loop.sock_connect(sock, ("127.0.0.1", port))
        except (OSError, TimeoutError):
            sock.close()
            stats["connect failed"] += 1
            await asyncio.sleep(random.uniform(0.5, 1.5))
            continue
        transport, conn = await loop.create_connection(lambda: _Held(slow), sock=sock)
        stats["opened"] += 1
        held.add(transport)
        stats["peak open"] = max(stats["peak open"], len(held))
        await conn.lost
        held.discard(transport)
        if run["stopping"]:
            return
        stats["refused (503)" if conn.answer.startswith(b"HTTP/1.1 503") else "closed"] += 1
        await asyncio.sleep(random.uniform(0.5, 1.5))


async def attack(port: int, source: str, idle: int, slow: int, duration: float) -> None:
    """Hold ``idle`` + ``slow`` connections from ``source`` for ``duration`` seconds, then
    print what happened to them as one JSON line."""
    run: dict[str, Any] = {
        "stats": Counter({"peak open": 0}),
        "held": set(),
        "stopping": False,
        "connecting": asyncio.Semaphore(256),  # connects in flight, so SYNs are not all lost
    }
    tasks = [asyncio.create_task(_attacker(port, source, False, run)) for _ in range(idle)]
    tasks += [asyncio.create_task(_attacker(port, source, True, run)) for _ in range(slow)]
    await asyncio.sleep(duration)
    run["stopping"] = True
    run["stats"]["open at the end"] = len(run["held"])
    for transport in list(run["held"]):
        transport.abort()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(run["stats"]), flush=True)


# ---- the normal client ------------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    name: str
    results: dict[str, list[float | None]] = field(
        default_factory=lambda: {"healthz": [], "json": []}
    )
    fds: list[int] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    cpu: float = 0.0  # share of a core the gateway used


async def _probe(http: aiohttp.ClientSession, url: str, kind: str, phase: Phase) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        if kind == "healthz":
            request = http.get(f"{url}/healthz")
        else:
            headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
            request = http.post(f"{url}/v1/messages", json=MESSAGE, headers=headers)
        async with request as response:
            await response.read()
            ok = response.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        ok = False
    phase.results[kind].append(loop.time() - started if ok else None)


async def _watch(gateway: Proc, phase: Phase) -> None:
    while True:
        with contextlib.suppress(OSError, RuntimeError):
            phase.fds.append(len(os.listdir(f"/proc/{gateway.pid}/fd")))
            phase.rss.append(rss_mb(gateway.pid))
        await asyncio.sleep(0.5)


async def probe(url: str, gateway: Proc, phase: Phase, seconds: float) -> None:
    """Probe for ``seconds``, a new connection each time, while watching the gateway."""
    loop = asyncio.get_running_loop()
    watching = asyncio.create_task(_watch(gateway, phase))
    cpu0, t0 = cpu_seconds(gateway.pid), loop.time()
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        probes: list[asyncio.Task[None]] = []
        n = 0
        while loop.time() - t0 < seconds:
            probes += [
                asyncio.create_task(_probe(http, url, k, phase)) for k in ("healthz", "json")
            ]
            n += 1
            await asyncio.sleep(max(0.0, t0 + n / PROBES_PER_SECOND - loop.time()))
        await asyncio.gather(*probes)
    watching.cancel()
    phase.cpu = (cpu_seconds(gateway.pid) - cpu0) / (loop.time() - t0)


# ---- one run: a scenario against one gateway --------------------------------------------


@dataclass(slots=True)
class Run:
    scenario: str
    target: str
    phases: list[Phase]
    attackers: Counter[str]
    gateway_counts: str


HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).with_name("claude-proxy"))


async def run_scenario(scenario: Scenario, target: str, opts: argparse.Namespace) -> Run:
    python, cli = sys.executable, CLI
    sim_port, port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    procs: list[Proc] = []
    helpers: list[Proc] = []
    try:
        sim_args = f"simulate --host 127.0.0.1 --port {sim_port} --speed 0 --api-key {API_KEY}"
        procs.append(sim := spawn("simulator", OTHER_CORE, [cli, *sim_args.split()]))
        gw_args = f"serve --host 127.0.0.1 --port {port} --upstream http://127.0.0.1:{sim_port}"
        argv, env = [cli, *gw_args.split()], {"ANTHROPIC_API_KEY": API_KEY}
        if target == "baseline":
            argv = [python, "-c", CLI_OF_PATH, *gw_args.split()]
            env["PYTHONPATH"] = str(Path(opts.baseline) / "src")
        procs.append(gateway := spawn(target, GATEWAY_CORE, argv, env=env))
        wait_ready(sim, f"http://127.0.0.1:{sim_port}/sim/stats")
        wait_ready(gateway, f"{url}/readyz")
        before, during, after = Phase("before"), Phase("during"), Phase("after")
        await probe(url, gateway, before, opts.phase)

        per_helper = opts.idle // len(scenario.idle_sources)
        plan = [(source, per_helper, 0) for source in scenario.idle_sources]
        plan.append((scenario.slow_source, 0, opts.slow))
        for source, idle, slow in plan:
            attack_args = f"attack {port} {source} {idle} {slow} {opts.attack}"
            argv = [python, str(HERE / "exhaustion.py"), *attack_args.split()]
            helpers.append(spawn(f"attack {source}", OTHER_CORE, argv, pipe=True))
        await probe(url, gateway, during, opts.attack)
        attackers: Counter[str] = Counter()
        for helper in helpers:
            line = await asyncio.to_thread(helper.popen.stdout.readline)  # type: ignore[union-attr]
            if not line:
                raise RuntimeError(f"an attacker died:\n{helper.log_tail()}")
            for key, value in json.loads(line).items():
                attackers[key] += value
        await asyncio.sleep(2.0)  # the gateway sees the attackers' resets
        await probe(url, gateway, after, opts.phase)
        gateway.popen.terminate()  # it logs its connection counters as it stops
        await asyncio.to_thread(gateway.popen.wait, 30)
        log = gateway.log_tail(50_000)
    finally:
        for proc in [*helpers, *reversed(procs)]:
            stop(proc)
    counts = re.search(r"client connections since start: ([^\"\n]*)", log)
    return Run(
        scenario.name,
        target,
        [before, during, after],
        attackers,
        counts.group(1) if counts else "n/a",
    )


# ---- the report -------------------------------------------------------------------------


def _cell(samples: list[float | None]) -> tuple[str, str]:
    """Success rate, and p50 / p99 latency of the successes."""
    ok = sorted(s * 1000 for s in samples if s is not None)
    rate = f"{len(ok)}/{len(samples)} ({100 * len(ok) / max(1, len(samples)):.0f} %)"
    if not ok:
        return rate, "-"
    p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))]
    return rate, f"{statistics.median(ok):.1f} / {p99:.0f}"


def report(runs: list[Run], opts: argparse.Namespace) -> str:
    out = [
        f"# Connection exhaustion: {opts.idle:,} idle sockets + {opts.slow:,} slowloris clients"
        f" for {opts.attack:g} s; the normal client probes {PROBES_PER_SECOND}/s each, new"
        f" connections, {PROBE_TIMEOUT:g} s timeout\n",
        "| scenario | gateway | phase | /healthz ok | /healthz p50 / p99 ms | JSON ok "
        "| JSON p50 / p99 ms | gateway fds (max) | RSS MB (max) | gateway CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for phase in run.phases:
            (h_ok, h_ms), (j_ok, j_ms) = (
                _cell(phase.results["healthz"]),
                _cell(phase.results["json"]),
            )
            fds = max(phase.fds, default=0)
            rss = max(phase.rss, default=0.0)
            out.append(
                f"| {run.scenario} | {run.target} | {phase.name} | {h_ok} | {h_ms} | {j_ok} | "
                f"{j_ms} | {fds:,} | {rss:.0f} | {100 * phase.cpu:.0f} % |"
            )
    keys = ["opened", "refused (503)", "closed", "connect failed", "peak open", "open at the end"]
    out += [
        "\n# What became of the attackers' connections (their count) and the gateway's own count\n",
        "| scenario | gateway | " + " | ".join(keys) + " | the gateway's counters |",
        "|---|---|" + "---|" * len(keys) + "---|",
    ]
    for run in runs:
        cells = " | ".join(f"{run.attackers.get(k, 0):,}" for k in keys)
        out.append(f"| {run.scenario} | {run.target} | {cells} | {run.gateway_counts} |")
    return "\n".join(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="spread,one-address")
    parser.add_argument("--idle", type=int, default=20_000)
    parser.add_argument("--slow", type=int, default=1_000)
    parser.add_argument("--phase", type=float, default=10.0, help="seconds before and after")
    parser.add_argument("--attack", type=float, default=50.0, help="seconds of attack")
    parser.add_argument("--baseline", help="another checkout's root, run as gateway 'baseline'")
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.idle, opts.slow, opts.phase, opts.attack = 2_000, 100, 3.0, 8.0
    return opts


async def main(opts: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {OTHER_CORE})
    targets = ["gateway", *(["baseline"] if opts.baseline else [])]
    runs = []
    for name in opts.scenarios.split(","):
        for target in targets:
            print(f"  {name} against {target} ...", file=sys.stderr, flush=True)
            runs.append(await run_scenario(SCENARIOS[name], target, opts))
    print(report(runs, opts))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["attack"]:
        import uvloop

        port, source, idle, slow, duration = sys.argv[2:7]
        uvloop.run(attack(int(port), source, int(idle), int(slow), float(duration)))
    else:
        options = parse_args(sys.argv[1:])
        sys.exit(run_benchmark(lambda: asyncio.run(main(options))))
