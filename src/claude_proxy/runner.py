"""Run the gateway process: start serving, wait for a signal, shut down."""

from __future__ import annotations

import logging

from claude_proxy.app import create_app
from claude_proxy.config import Settings
from claude_proxy.server import run_event_loop, start_server, wait_for_signal

__all__ = ["serve_gateway"]

_log = logging.getLogger("claude_proxy")


def serve_gateway(settings: Settings) -> None:
    run_event_loop(_serve(settings))


async def _serve(settings: Settings) -> None:
    server = await start_server(create_app(settings), settings.listen.host, settings.listen.port)
    upstream = settings.primary
    _log.info(
        "claude-proxy listening on %s, upstream %s (%s key)",
        server.url,
        upstream.base_url,
        "gateway" if upstream.api_key else "client's own",
    )
    try:
        await wait_for_signal()
    finally:
        await server.stop()
