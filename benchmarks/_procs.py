"""Child processes for the benchmarks: start pinned, wait for readiness, read /proc, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, NoReturn

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, chars: int = 2000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]


def free_port() -> int:
    # Binding to port 0 lets the kernel pick; the tiny race until the child binds is fine here.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    name: str,
    core: int | str,
    argv: list[str],
    env: dict[str, str] | None = None,
    pipe: bool = False,
) -> Proc:
    """Start ``argv`` pinned to one core; stderr (and stdout unless piped) go to a temp log."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process; stop() closes it
    popen = subprocess.Popen(
        ["taskset", "-c", str(core), *argv],
        env={**os.environ, **(env or {})},
        stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipe else log,
        stderr=log,
        # Own session: Ctrl-C reaches only us, and we stop the children in order.
        start_new_session=True,
    )
    return Proc(name, popen, log)


def wait_ready(proc: Proc, url: str, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; fail early, with its log, if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout:.0f}s:\n{proc.log_tail()}")


def wait_listening(proc: Proc, port: int, timeout: float = 30.0) -> None:
    """For servers without a health route: ready when the port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not listening on {port} after {timeout:.0f}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces; fields after it are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def stop(proc: Proc) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 5 s."""
    if proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()
    for stream in (proc.popen.stdin, proc.popen.stdout):
        if stream is not None:
            stream.close()
    proc.log.close()


def run_benchmark(benchmark: Callable[[], int]) -> int:
    """Run ``benchmark`` so that SIGTERM and Ctrl-C still stop every child it started
    (its ``finally`` blocks do): the exit status to pass to ``sys.exit``."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return benchmark()
    except KeyboardInterrupt:
        print("interrupted; processes stopped", file=sys.stderr)
        return 130


def _exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    # SystemExit unwinds through the finally blocks that stop the children.
    raise SystemExit(128 + signum)
