"""The bench's servers as child processes: the simulator and a gateway, each on a free
loopback port, and the gateway's memory as the kernel reports it (``/proc``).

The children run in sessions of their own (a Ctrl-C reaches the bench, which stops them
in order) and, on Linux, die with the bench however it ends (``PR_SET_PDEATHSIG``): a
gateway left running would hold the upstream's key on an unauthenticated port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

__all__ = ["Child", "Memory", "StartFailed", "gateway", "memory", "reset_peak", "simulator"]

_LISTENING = re.compile(r"listening on (http://[^\s,\"']+)")
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_KEY_ENV = "ANTHROPIC_API_KEY"
_LINE_LIMIT = 1 << 20  # a log line longer than asyncio's 64 KiB default must not stop us


class StartFailed(Exception):
    """A child process ended, or said nothing, before it listened; the message has its log."""


@dataclass(slots=True)
class Child:
    name: str
    process: asyncio.subprocess.Process
    url: str = ""
    log: deque[str] = field(default_factory=lambda: deque(maxlen=40))

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass(frozen=True, slots=True)
class Memory:
    rss_mb: float  # resident now (VmRSS)
    peak_mb: float  # the most resident since start, or since the last reset_peak (VmHWM)


def memory(pid: int) -> Memory | None:
    """The process's memory, or None where /proc cannot tell (another OS, a gone pid)."""
    fields: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    if "VmRSS" not in fields:
        return None
    return Memory(fields["VmRSS"], fields.get("VmHWM", fields["VmRSS"]))


def reset_peak(pid: int) -> bool:
    """Start the peak (VmHWM) afresh from the current RSS (Linux 4.0+, our own processes):
    each row then reports its own peak. False: not possible, the peak runs from start."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


@contextlib.asynccontextmanager
async def simulator(speed: float, api_key: str) -> AsyncIterator[Child]:
    """``claude-proxy simulate`` with its latency model at ``speed``, on a free port."""
    argv = ["simulate", "--host", "127.0.0.1", "--port", "0", "--speed", str(speed)]
    async with _child("simulator", [*argv, "--api-key", api_key], dict(os.environ)) as child:
        yield child


@contextlib.asynccontextmanager
async def gateway(upstream: str, api_key: str | None) -> AsyncIterator[Child]:
    """``claude-proxy serve`` in front of ``upstream``, with its default configuration (a
    ``CLAUDE_PROXY_CONFIG`` of this shell is not used) and ``api_key`` as the upstream key
    (None: none, the client's key goes through)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_PROXY_CONFIG", _KEY_ENV)}
    if api_key is not None:
        env[_KEY_ENV] = api_key
    argv = ["serve", "--host", "127.0.0.1", "--port", "0", "--upstream", upstream]
    async with _child("gateway", argv, env) as child:
        yield child


@contextlib.asynccontextmanager
async def _child(name: str, argv: list[str], env: dict[str, str]) -> AsyncIterator[Child]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "claude_proxy", *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=_LINE_LIMIT,
        # Its own process group: a Ctrl-C in the terminal reaches the bench, which stops
        # its children in order, instead of killing them under it.
        start_new_session=True,
        preexec_fn=_die_with_parent(),
    )  # fmt: skip
    child = Child(name, process)
    drain: asyncio.Task[None] | None = None
    try:
        child.url = await _address(child)
        # Keep reading its output, or a full pipe would stall it mid-benchmark.
        drain = asyncio.create_task(_keep_tail(child))
        yield child
    finally:
        if drain is not None:
            drain.cancel()
        await _stop(process)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """For the child, between fork and exec: SIGTERM when the bench's thread that started
    it ends, whatever ends it (SIGKILL, a crash). Linux only; None elsewhere.

    Chosen over a child that exits when its stdin closes: the kernel does it, for any
    child, with no code in the gateway or the simulator watching a pipe. (The bench forks
    from its event loop thread, which lives as long as the bench.)
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the bench died before the line above took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


async def _address(child: Child) -> str:
    assert child.process.stdout is not None
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while line := await child.process.stdout.readline():
                text = line.decode("utf-8", "replace").rstrip()
                child.log.append(text)
                if match := _LISTENING.search(text):
                    return match.group(1)
    except TimeoutError:
        raise StartFailed(
            f"the {child.name} did not start within {_START_TIMEOUT:.0f} s:\n"
            + "\n".join(child.log)
        ) from None
    await child.process.wait()
    raise StartFailed(
        f"the {child.name} exited ({child.process.returncode}) before listening:\n"
        + "\n".join(child.log)
    )


async def _keep_tail(child: Child) -> None:
    assert child.process.stdout is not None
    while line := await child.process.stdout.readline():
        child.log.append(line.decode("utf-8", "replace").rstrip())


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # ended on its own, not yet reaped
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(_STOP_TIMEOUT):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
