"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from claude_proxy.services import SERVICES

__all__ = ["healthz", "readyz"]


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The gateway accepts new work: false while starting or draining, and while the
    shared state is unreachable if admission fails closed (every admitted call would be
    refused, so a load balancer should send the traffic to other replicas)."""
    services = request.app.get(SERVICES)
    if services is None or not services.ready:
        reason = "starting or draining"
        return web.json_response({"status": "unready", "reason": reason}, status=503)
    if not await services.admission.healthy():
        if services.settings.admission.on_state_failure == "closed":
            reason = "shared state unreachable: requests are refused until it is back"
            return web.json_response({"status": "unready", "reason": reason}, status=503)
        degraded = "shared state unreachable: admitting on this replica's own limits"
        return web.json_response({"status": "ready", "degraded": degraded})
    return web.json_response({"status": "ready"})
