"""The processes: simulator, gateway and load generator on their cores, and their CPU meter."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _procs import Proc, cpu_seconds, free_port, spawn, stop, wait_ready

HERE = Path(__file__).resolve().parent
PROXY_CORE, LOAD_CORE = 0, 1
API_KEY = "sk-ant-benchmark-key"
TARGETS = ("direct-sse", "gateway-sse", "gateway-ws")
# The gateway's only non-default settings. Logging at warning: one log line per request
# would otherwise be measured too. upstream_max_concurrent (default 64) is the admission
# window towards the API: at 64 the streams beyond it would wait in the gateway's queue,
# which is a policy, not the cost of relaying them.
GATEWAY_CONFIG = "log: {level: warning}\nupstream_max_concurrent: 20000\n"
SIM_BACKLOG = 4096


@dataclass(slots=True)
class Cluster:
    sim: Proc
    gateway: Proc
    load: Proc
    sim_port: int
    gw_port: int

    def url(self, target: str) -> str:
        if target == "direct-sse":
            return f"http://127.0.0.1:{self.sim_port}/v1/messages"
        if target == "gateway-sse":
            return f"http://127.0.0.1:{self.gw_port}/v1/messages"
        return f"ws://127.0.0.1:{self.gw_port}/v1/ws"

    def job(self, target: str, answer_tokens: int, events: int, **extra: Any) -> dict[str, Any]:
        return {
            "kind": "ws" if target == "gateway-ws" else "sse",
            "url": self.url(target),
            "api_key": API_KEY,
            "answer_tokens": answer_tokens,
            "events": events,
            **extra,
        }

    def run(
        self, job: dict[str, Any], on_open: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        stdin, stdout = self.load.popen.stdin, self.load.popen.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("load generator was started without pipes")
        stdin.write(json.dumps(job).encode() + b"\n")
        stdin.flush()
        while True:
            line = stdout.readline()
            if not line:
                raise RuntimeError(f"load generator died:\n{self.load.log_tail()}")
            result: dict[str, Any] = json.loads(line)
            if "all_open" not in result:
                return result
            if on_open is not None:
                on_open(result)


@contextlib.contextmanager
def running_cluster(sim_flags: str, gateway_config: str = GATEWAY_CONFIG) -> Iterator[Cluster]:
    cli = str(Path(sys.executable).with_name("claude-proxy"))
    sim_port, gw_port = free_port(), free_port()
    procs: list[Proc] = []
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="streaming-gw-") as config:
        config.write(gateway_config)
        config.flush()
        try:
            # The argument strings hold no spaces, so split() is a safe way to list them.
            # Backlog: aiohttp's default of 128 overflows when thousands of streams open
            # (dropped SYNs, retried a second later); the gateway listens with 1024.
            sim_args = (
                f"--host 127.0.0.1 --port {sim_port} --api-key {API_KEY} --backlog {SIM_BACKLOG} "
            )
            sim_argv = [sys.executable, str(HERE / "_sim.py"), *(sim_args + sim_flags).split()]
            procs.append(sim := spawn("simulator", LOAD_CORE, sim_argv))
            gw_args = (
                f"serve --config {config.name} --host 127.0.0.1 --port {gw_port} "
                f"--upstream http://127.0.0.1:{sim_port}"
            )
            gw_env = {"ANTHROPIC_API_KEY": API_KEY}
            procs.append(gw := spawn("gateway", PROXY_CORE, [cli, *gw_args.split()], env=gw_env))
            load_argv = [sys.executable, str(HERE / "_stream_load.py")]
            procs.append(load := spawn("load", LOAD_CORE, load_argv, pipe=True))
            wait_ready(sim, f"http://127.0.0.1:{sim_port}/sim/stats")
            wait_ready(gw, f"http://127.0.0.1:{gw_port}/readyz")
            yield Cluster(sim, gw, load, sim_port, gw_port)
        finally:
            for proc in reversed(procs):
                stop(proc)


def steal_ticks() -> tuple[list[int], list[int]]:
    """Per core: (steal ticks, all ticks) from /proc/stat; a VM's lost time shows here."""
    steal, total = [], []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                ticks = [int(x) for x in line.split()[1:]]
                steal.append(ticks[7] if len(ticks) > 7 else 0)
                total.append(sum(ticks[:8]))
    return steal, total


@dataclass(slots=True)
class CpuMeter:
    """CPU seconds of the three processes over one measurement, and the cores' steal."""

    cluster: Cluster
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    steal: list[float] = field(default_factory=list)
    _start: dict[str, float] = field(default_factory=dict)
    _steal0: tuple[list[int], list[int]] = ([], [])
    _wall0: float = 0.0

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        self._steal0 = steal_ticks()
        self._wall0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._wall0
        now = self._now()
        self.cpu = {name: now[name] - self._start[name] for name in now}
        steal, total = steal_ticks()
        self.steal = [
            (s - s0) / max(1, t - t0)
            for s, s0, t, t0 in zip(steal, self._steal0[0], total, self._steal0[1], strict=False)
        ]

    def busy(self, name: str) -> float:
        return self.cpu[name] / self.wall if self.wall else 0.0

    def _now(self) -> dict[str, float]:
        c = self.cluster
        return {
            "gateway": cpu_seconds(c.gateway.pid),
            "sim": cpu_seconds(c.sim.pid),
            "load": cpu_seconds(c.load.pid),
        }
