"""What crosses the gateway: version and beta headers yes, hop-by-hop and credentials no."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from claude_proxy.server import RunningServer, start_server
from tests.conftest import StartGateway
from tests.helpers import API_HEADERS, message_body

SEEN = web.AppKey("seen", list)


@pytest.fixture
async def recording_upstream() -> AsyncIterator[tuple[RunningServer, list[dict[str, str]]]]:
    """An upstream that records each request's headers and answers a fixed message."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response(
            {"type": "message", "content": []},
            headers={
                "request-id": "req_upstream",
                "x-upstream-extra": "1",
                "connection": "keep-alive",
            },
        )

    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    server = await start_server(app, "127.0.0.1", 0)
    yield server, seen
    await server.stop()


async def test_headers_forwarded_and_filtered(
    recording_upstream: tuple[RunningServer, list[dict[str, str]]],
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
) -> None:
    upstream, seen = recording_upstream
    gateway = await start_gateway(upstream.url, api_key="sk-gateway-key")
    headers = {
        **API_HEADERS,
        "authorization": "Bearer client-secret",
        "x-api-key": "client-secret",
        "anthropic-beta": "prompt-caching-2024-07-31,files-api-2025-04-14",
        "x-stainless-retry-count": "0",
        "proxy-authorization": "Basic abc",
        "te": "trailers",
    }
    async with http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=headers) as r:
        assert r.status == 200
        assert r.headers["request-id"] == "req_upstream"
        assert r.headers["x-upstream-extra"] == "1"
    sent = seen[0]
    assert sent["x-api-key"] == "sk-gateway-key"
    assert "authorization" not in sent
    assert "proxy-authorization" not in sent and "te" not in sent
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["anthropic-beta"] == "prompt-caching-2024-07-31,files-api-2025-04-14"
    assert sent["x-stainless-retry-count"] == "0"
