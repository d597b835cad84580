"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from claude_proxy.services import SERVICES

__all__ = ["healthz", "readyz"]


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The gateway accepts new work (false while starting or draining)."""
    services = request.app.get(SERVICES)
    if services is None or not services.ready:
        return web.json_response({"status": "unready"}, status=503)
    return web.json_response({"status": "ready"})
