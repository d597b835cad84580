"""Several gateway processes on one listening socket: started, restarted, drained.

``claude-proxy serve --workers N`` starts N workers (``serve --worker-fd``), each
with a listening socket of its own on the same port (SO_REUSEPORT), so the kernel
spreads new connections evenly; one socket shared by every worker would let the
busiest worker, the one awake, take nearly all of them. Where SO_REUSEPORT does not
balance (not Linux) the workers share one socket.
Their metrics meet in one multi-process directory, so any worker's ``/metrics``
shows all of them. A worker that dies is restarted (its live gauges dropped); one
that keeps dying at start-up stops the whole gateway rather than spin. On SIGTERM
every worker gets SIGTERM and drains as a single gateway would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from claude_proxy.config import Settings, worker_environment
from claude_proxy.connections import describe_limits, resolve_limits
from claude_proxy.listening import listen_errors
from claude_proxy.observability import mark_worker_dead
from claude_proxy.server import run_event_loop, wait_for_signal

__all__ = ["supervise"]

_log = logging.getLogger("claude_proxy.workers")
QUICK_DEATH = 5.0  # seconds: a worker dying sooner than this after its start is failing
MAX_QUICK_DEATHS = 5


class _Listener:
    """Where workers accept: a socket each on one port, or one shared socket."""

    def __init__(self, host: str, port: int) -> None:
        self.balanced = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
        if self.balanced:
            # Bound, never listening: it gets no connections of the group, but it holds
            # the port (and fixes it when port 0 was asked for) while workers restart.
            self.anchor = _bound_reuseport(host, port)
        else:
            self.anchor = socket.create_server((host, port), backlog=1024)
        self.address = self.anchor.getsockname()[:2]

    def for_worker(self) -> socket.socket:
        if not self.balanced:
            return self.anchor
        return socket.create_server(self.address, backlog=1024, reuse_port=True)


class _Supervisor:
    def __init__(
        self, settings: Settings, command: list[str], listener: _Listener, metrics_dir: str
    ) -> None:
        self.settings = settings
        self.command = command
        self.listener = listener
        self.metrics_dir = metrics_dir
        self.stopping = False
        self.failed = False
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._spawning = asyncio.Lock()

    async def run_worker(self, slot: int, env: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()
        quick_deaths, backoff = 0, 0.5
        while not self.stopping:
            process = await self._spawn(env)
            self.processes[slot] = process
            started = loop.time()
            code = await process.wait()
            mark_worker_dead(self.metrics_dir, process.pid)
            if self.stopping:
                return
            quick = loop.time() - started < QUICK_DEATH
            quick_deaths = quick_deaths + 1 if quick else 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                _log.error("worker %d keeps dying at start-up (exit %s); stopping", slot, code)
                self.failed = True
                return
            _log.warning("worker %d (pid %d) exited with %s; restarting", slot, process.pid, code)
            backoff = min(backoff * 2, 10.0) if quick else 0.5
            await asyncio.sleep(backoff)

    async def _spawn(self, env: dict[str, str]) -> asyncio.subprocess.Process:
        # One at a time: a child may inherit every inheritable descriptor open at its
        # start (uvloop's spawn does), and a worker holding another's socket would keep
        # it in the group after that worker died, taking connections nobody accepts.
        async with self._spawning:
            sock = self.listener.for_worker()
            sock.set_inheritable(True)
            fd = sock.fileno()
            try:
                return await asyncio.create_subprocess_exec(
                    *self.command, "--worker-fd", str(fd), env=env, pass_fds=(fd,)
                )
            finally:
                if sock is not self.listener.anchor:
                    sock.close()  # the worker has its own copy
                else:
                    sock.set_inheritable(False)

    async def stop_workers(self) -> None:
        self.stopping = True
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        shutdown = self.settings.shutdown
        grace = shutdown.unready_delay + shutdown.drain_seconds + 5.0
        _, late = await asyncio.wait(
            [asyncio.create_task(p.wait()) for p in running], timeout=grace
        )
        for process in running:
            if process.returncode is None:
                process.kill()
        if late:
            await asyncio.wait(late, timeout=5.0)


def supervise(settings: Settings, command: list[str]) -> int:
    """Run ``settings.workers`` copies of ``command`` (``serve`` with the same config)."""
    return run_event_loop(_supervise(settings, command))


async def _supervise(settings: Settings, command: list[str]) -> int:
    with listen_errors(settings.listen.host, settings.listen.port):
        listener = _Listener(settings.listen.host, settings.listen.port)
    metrics_dir, owned = _metrics_dir(settings)
    supervisor = _Supervisor(settings, command, listener, metrics_dir)
    env = worker_environment(metrics_dir)
    host, port = listener.address
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    tasks = [
        asyncio.create_task(supervisor.run_worker(slot, env)) for slot in range(settings.workers)
    ]
    _log.info("claude-proxy listening on %s with %d workers", url, settings.workers)
    # Each worker applies them to its own connections: together, N times as many.
    clients = settings.clients
    _log.info(
        "client connections, per worker: %s", describe_limits(clients, resolve_limits(clients))
    )
    stop = asyncio.create_task(wait_for_signal())
    try:
        while not stop.done() and not supervisor.failed:
            await asyncio.wait([stop, *tasks], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        await supervisor.stop_workers()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        listener.anchor.close()
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    _log.info("stopped")
    return 1 if supervisor.failed else 0


def _bound_reuseport(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _metrics_dir(settings: Settings) -> tuple[str, bool]:
    """The workers' shared metrics directory (emptied: old files would be counted), and
    whether this supervisor created it."""
    configured = settings.metrics.multiprocess_dir
    if configured is None:
        return tempfile.mkdtemp(prefix="claude-proxy-metrics-"), True
    directory = Path(configured)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return str(directory), False
