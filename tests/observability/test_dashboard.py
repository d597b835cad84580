"""The dashboard routes: a self-contained page and its JSON."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from claude_proxy.observability import Metrics, add_dashboard_routes
from claude_proxy.observability.dashboard import dashboard_html


async def test_page_and_data_are_served() -> None:
    metrics = Metrics(["acme"])
    metrics.request_started()
    metrics.request_finished(
        tenant="acme", model="claude-opus-4-1", stream=False, status=200, duration=0.2
    )
    app = web.Application()
    add_dashboard_routes(app, metrics.snapshot)
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/dashboard")
        assert page.status == 200
        assert page.content_type == "text/html"
        assert page.headers["cache-control"] == "no-store"
        assert "<canvas" in await page.text()
        data = await client.get("/dashboard/data")
        assert data.content_type == "application/json"
        numbers = await data.json()
        assert numbers["requests"] == 1
        assert numbers["tenants"]["acme"]["requests"] == 1


async def test_an_async_snapshot_with_extra_numbers_and_a_prefix() -> None:
    metrics = Metrics()

    async def snapshot() -> dict[str, Any]:
        return {**metrics.snapshot(), "admission": {"window": 7}}

    app = web.Application()
    add_dashboard_routes(app, snapshot, prefix="/ops/live")
    async with TestClient(TestServer(app)) as client:
        numbers = await (await client.get("/ops/live/data")).json()
        assert numbers["admission"] == {"window": 7}
        assert (await client.get("/ops/live")).status == 200


def test_page_loads_nothing_from_elsewhere() -> None:
    html = dashboard_html().decode()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(", html)
    assert "fetch(location.pathname" in html  # data comes from the page's own origin
