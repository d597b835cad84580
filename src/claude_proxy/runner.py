"""Run the gateway process: start serving, wait for a signal, drain, shut down.

On SIGTERM (or SIGINT) the gateway first reports unready for
``shutdown.unready_delay`` seconds so load balancers stop sending it work, then
closes its listener and gives in-flight requests and streams up to
``shutdown.drain_seconds`` to finish before the remaining ones are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from claude_proxy.app import create_app
from claude_proxy.collector import CollectionPolicy
from claude_proxy.config import Settings
from claude_proxy.listening import listen_errors
from claude_proxy.server import run_event_loop, start_server, wait_for_signal
from claude_proxy.services import SERVICES

__all__ = ["serve_gateway"]

_log = logging.getLogger("claude_proxy")


def serve_gateway(settings: Settings, sock: socket.socket | None = None) -> None:
    """Run one gateway process; ``sock``: a listening socket shared with other workers."""
    run_event_loop(_serve(settings, sock))


async def _serve(settings: Settings, sock: socket.socket | None) -> None:
    app = create_app(settings)
    # Only the bind: an OSError later in the gateway's life is no listening problem.
    with listen_errors(settings.listen.host, settings.listen.port):
        server = await start_server(
            app,
            settings.listen.host,
            settings.listen.port,
            shutdown_timeout=settings.shutdown.drain_seconds,
            sock=sock,
            clients=settings.clients,
        )
    # After start-up, so that what it built is frozen out of collections.
    collector = CollectionPolicy(settings.runtime, observe=app[SERVICES].metrics.gc_pause)
    collector.install()
    collecting = asyncio.create_task(collector.run(), name="garbage collection")
    _log.info(
        "claude-proxy listening on %s, upstreams: %s",
        server.url,
        ", ".join(f"{u.name} {u.base_url}" for u in settings.upstreams),
    )
    _log.info("client connections: %s", server.clients.describe())
    if (warning := server.clients.descriptor_warning()) is not None:
        _log.warning(warning)
    try:
        await wait_for_signal()
        app[SERVICES].ready = False
        _log.info(
            "shutting down: unready for %gs, then draining for up to %gs",
            settings.shutdown.unready_delay,
            settings.shutdown.drain_seconds,
        )
        await asyncio.sleep(settings.shutdown.unready_delay)
    finally:
        await server.stop()
        collecting.cancel()
        collector.uninstall()
    _log.info("client connections since start: %s", server.clients.stats.summary())
    _log.info("stopped")
