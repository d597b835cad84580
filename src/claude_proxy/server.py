"""Run aiohttp applications on a socket: start, report the address, stop cleanly."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from claude_proxy.config.settings import ClientSettings
from claude_proxy.connections import ClientGuard, ClientRunner

__all__ = ["RunningServer", "run_event_loop", "start_server", "wait_for_signal"]

T = TypeVar("T")


@dataclass(slots=True)
class RunningServer:
    runner: web.AppRunner
    host: str
    port: int
    clients: ClientGuard  # its client limits, and their counters

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_server(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 5.0,
    sock: socket.socket | None = None,
    clients: ClientSettings | None = None,
) -> RunningServer:
    """Serve ``app`` on host:port (port 0 picks a free one) and return where it listens.

    ``sock``: an already listening socket to accept on instead (a worker process
    shares its supervisor's). ``clients``: limits on client connections (the defaults
    when None).
    """
    guard = ClientGuard(clients if clients is not None else ClientSettings())
    # handler_cancellation: a client that disconnects cancels its handler, and with it
    # the upstream call, instead of leaving the API generating for nobody.
    runner = ClientRunner(
        app, guard, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock)
    else:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    server = site._server
    sockets = [sock] if sock is not None else getattr(server, "sockets", None) or []
    bound_port = sockets[0].getsockname()[1] if sockets else port
    return RunningServer(runner=runner, host=host, port=bound_port, clients=guard)


async def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (markedly faster), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
