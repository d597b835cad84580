"""``GET /metrics`` (Prometheus) and ``GET /dashboard`` (the live page) of the gateway.

Gauges that describe state rather than events (admission windows and queues,
circuit breakers) are refreshed from their owners just before each scrape. Who may
read them: ``api.operators``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from claude_proxy.api.operators import require_operator
from claude_proxy.errors import NotFound
from claude_proxy.observability import add_dashboard_routes
from claude_proxy.services import SERVICES, Services
from claude_proxy.state import StateUnavailable

__all__ = ["add_observability_routes"]


async def _refresh_gauges(services: Services) -> None:
    metrics = services.metrics
    # The window is shared state (every process reports it; dashboards take the max).
    # Redis down: the last value stays, and the request metrics still answer.
    with contextlib.suppress(StateUnavailable):
        metrics.set_window((await services.admission.snapshot()).window)
    for deployment in services.router.deployments:
        metrics.set_breaker(deployment.name, deployment.breaker.state.value)


async def metrics_page(request: web.Request) -> web.Response:
    require_operator(request)
    services = request.app[SERVICES]
    if not services.settings.metrics.enabled:
        raise NotFound("Metrics are disabled on this gateway (metrics.enabled: false).")
    await _refresh_gauges(services)
    body, content_type = services.metrics.render()
    return web.Response(body=body, headers={"content-type": content_type})


def add_observability_routes(app: web.Application) -> None:
    async def snapshot() -> dict[str, Any]:
        services = app[SERVICES]
        await _refresh_gauges(services)
        return services.metrics.snapshot()

    app.router.add_get("/metrics", metrics_page)
    add_dashboard_routes(app, snapshot, guard=require_operator)
