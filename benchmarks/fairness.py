"""Fairness under a flood, and what admission costs per request (memory vs Redis state).

Tenant B sends its normal load throughout; halfway, tenant A starts flooding the
gateway at ten times its share of the upstream window. B's latency while A floods
(from A's first request on) is compared with B alone just before. With weighted
fair queueing B should barely notice A (target: p99 within 1.2x).

    python benchmarks/fairness.py              # ~2 minutes
    python benchmarks/fairness.py --quick      # a smoke check

The simulator runs at real speed (~160 ms + 1 ms per token, 40-token answers),
the gateway's upstream window is 8 slots, tenants A and B have equal weight, so
each one's share is 4 slots: B uses 2 (closed loop), A runs 40 (10x its share).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _procs import Proc, cpu_seconds, free_port, spawn, stop, wait_ready
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "claude_proxy"]
UPSTREAM_KEY = "sk-ant-benchmark-key"
REDIS_URL = "redis://127.0.0.1:6379/0"
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Fairness check"}],
}


@dataclass(slots=True)
class Result:
    latencies: list[float]
    errors: int
    seconds: float
    starts: list[float] = field(default_factory=list)  # monotonic start of each latency

    def between(self, start: float, end: float) -> Result:
        """The requests that started in [start, end)."""
        picked = [(t, lat) for t, lat in zip(self.starts, self.latencies, strict=True)]
        kept = [(t, lat) for t, lat in picked if start <= t < end]
        return Result([lat for _, lat in kept], 0, end - start, [t for t, _ in kept])

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


async def closed_loop(url: str, key: str, workers: int, seconds: float, tokens: int) -> Result:
    """``workers`` clients each sending one request after another for ``seconds``."""
    headers = {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": key,
        "x-sim-answer-tokens": str(tokens),
    }
    latencies: list[float] = []
    starts: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                started = time.monotonic()
                async with http.post(f"{url}/v1/messages", json=BODY, headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        latencies.append(time.monotonic() - started)
                        starts.append(started)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return Result(latencies, errors, seconds, starts)


def gateway_config(sim_url: str, state: str, tenants: bool, window: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "upstreams": [{"name": "sim", "base_url": sim_url, "api_key": UPSTREAM_KEY}],
        "upstream_max_concurrent": window,
        "state": state,
        "admission": {"key_prefix": f"bench:{uuid.uuid4().hex}:"},
        "log": {"level": "warning"},
    }
    if tenants:
        config["tenants"] = [
            {"name": "team-a", "keys": ["key-a"], "queue_timeout": 120},
            {"name": "team-b", "keys": ["key-b"], "queue_timeout": 120},
        ]
    return config


def start_gateway(
    sim_url: str, state: str, tenants: bool, window: int, tmp: Path
) -> tuple[Proc, str]:
    path = tmp / f"{uuid.uuid4().hex}.yaml"
    path.write_text(yaml.safe_dump(gateway_config(sim_url, state, tenants, window)))
    port = free_port()
    proc = spawn("gateway", 0, [*CLI, "serve", "--config", str(path), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/readyz")
    return proc, url


def start_sim(speed: float) -> tuple[Proc, str]:
    port = free_port()
    argv = [*CLI, "simulate", "--port", str(port), "--speed", str(speed), "--api-key", UPSTREAM_KEY]
    proc = spawn("simulator", 1, argv)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/sim/stats")
    return proc, url


async def queue_waits(url: str, tenant: str) -> tuple[float, float]:
    """The tenant's admissions so far, and how many of them waited more than 50 ms."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as r:
        text = await r.text()
    total = over = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("tenant") != tenant:
                continue
            if sample.name == "api_queue_wait_seconds_count":
                total += sample.value
            elif sample.name == "api_queue_wait_seconds_bucket" and sample.labels["le"] == "0.05":
                over -= sample.value
    return total, over + total


async def fairness(state: str, seconds: float, tmp: Path) -> list[str]:
    sim, sim_url = start_sim(1.0)
    gateway, url = start_gateway(sim_url, state, tenants=True, window=8, tmp=tmp)
    try:
        await closed_loop(url, "key-b", 2, 1.0, 40)  # warm-up
        b_run = asyncio.create_task(closed_loop(url, "key-b", 2, 2 * seconds, 40))
        split = time.monotonic() + seconds
        await asyncio.sleep(seconds)
        before = await queue_waits(url, "team-b")
        flood = await closed_loop(url, "key-a", 40, seconds, 40)
        after = await queue_waits(url, "team-b")
        b = await b_run
    finally:
        stop(gateway)
        stop(sim)
    alone = b.between(split - seconds, split)
    shared = b.between(split, split + seconds)
    shared.errors = b.errors
    ratio = shared.pct(0.99) / alone.pct(0.99)
    return [
        f"| {state.split(':')[0]} | B alone | {alone.pct(0.5):.0f} | {alone.pct(0.99):.0f} | "
        f"{alone.rate:.1f} | - | {alone.errors} |",
        f"| {state.split(':')[0]} | B with A flooding | {shared.pct(0.5):.0f} | "
        f"{shared.pct(0.99):.0f} | {shared.rate:.1f} | {flood.rate:.1f} | "
        f"{shared.errors + flood.errors} |",
        f"| {state.split(':')[0]} | **B p99 ratio** | | **{ratio:.2f}x** | | | |",
        f"| {state.split(':')[0]} | B admissions waiting > 50 ms while A floods | "
        f"{after[1] - before[1]:.0f} of {after[0] - before[0]:.0f} | | | | |",
    ]


async def overhead(seconds: float, tmp: Path) -> list[str]:
    """c=1 latency and gateway CPU per request: open, tenants+memory, tenants+Redis."""
    sim, sim_url = start_sim(0.0)
    rows = []
    try:
        for label, state, tenants in (
            ("open (no tenants)", "memory://", False),
            ("tenants, memory://", "memory://", True),
            ("tenants, redis://", REDIS_URL, True),
        ):
            medians, cpu = [], []
            for _ in range(3):
                gateway, url = start_gateway(sim_url, state, tenants, 64, tmp)
                try:
                    await closed_loop(url, "key-b", 1, 0.5, 16)
                    before = cpu_seconds(gateway.pid)
                    result = await closed_loop(url, "key-b", 1, seconds, 16)
                    cpu.append((cpu_seconds(gateway.pid) - before) / len(result.latencies) * 1e6)
                    medians.append(statistics.median(result.latencies) * 1e6)
                finally:
                    stop(gateway)
            rows.append((label, statistics.median(medians), statistics.median(cpu)))
    finally:
        stop(sim)
    base = rows[0][1]
    return [f"| {label} | {p50:.0f} | {p50 - base:+.0f} | {cpu:.0f} |" for label, p50, cpu in rows]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per fairness phase")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--states", default="memory,redis")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    os.sched_setaffinity(0, {1})  # the load shares core 1 with the simulator
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    states = {"memory": "memory://", "redis": REDIS_URL}
    print("# Fairness: tenant B's latency (ms) alone vs while tenant A floods at 10x its share\n")
    print("| state | phase | B p50 ms | B p99 ms | B req/s | A req/s | errors |")
    print("|---|---|---|---|---|---|---|")
    for name in args.states.split(","):
        for row in await fairness(states[name], seconds, tmp):
            print(row, flush=True)
    print("\n# Admission cost per request (concurrency 1, simulator at speed 0, median of 3)\n")
    print("| gateway | p50 µs | vs open | gateway CPU µs/req |")
    print("|---|---|---|---|")
    for row in await overhead(1.0 if args.quick else 3.0, tmp):
        print(row, flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
