"""``GET /dashboard``: a self-contained live page; ``GET /dashboard/data``: its numbers.

The page is one static file shipped in the package (inline CSS and JS, no CDN),
because the gateway may run where there is no internet.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

__all__ = ["Snapshot", "add_dashboard_routes", "dashboard_html"]

Snapshot = Callable[[], Awaitable[dict[str, Any]] | dict[str, Any]]

_NO_STORE = {"cache-control": "no-store"}


def dashboard_html() -> bytes:
    """The page, read from the package data."""
    return (resources.files(__package__) / "static" / "dashboard.html").read_bytes()


def add_dashboard_routes(
    app: web.Application,
    snapshot: Snapshot,
    *,
    prefix: str = "/dashboard",
    guard: Callable[[web.Request], None] | None = None,
) -> None:
    """Serve the page at ``prefix`` and ``snapshot()`` as JSON at ``prefix + "/data"``.

    ``snapshot`` is ``Metrics.snapshot`` or a function adding more to it (admission
    state, ...); it may be a coroutine function. ``guard`` raises to refuse a request.
    """
    page = dashboard_html()

    async def show(request: web.Request) -> web.Response:
        if guard is not None:
            guard(request)
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=_NO_STORE)

    async def data(request: web.Request) -> web.Response:
        if guard is not None:
            guard(request)
        result = snapshot()
        numbers = await result if inspect.isawaitable(result) else result
        return web.Response(
            body=orjson.dumps(numbers, option=orjson.OPT_NON_STR_KEYS),
            content_type="application/json",
            headers=_NO_STORE,
        )

    app.router.add_get(prefix, show)
    app.router.add_get(f"{prefix}/data", data)
