"""Bad input gets a clear 4xx in the Anthropic error shape, and the gateway keeps serving."""

from __future__ import annotations

import aiohttp
import pytest

from claude_proxy.server import RunningServer
from tests.conftest import StartGateway
from tests.helpers import API_HEADERS, message_body


async def assert_error(
    response: aiohttp.ClientResponse, status: int, error_type: str, text: str
) -> None:
    assert response.status == status
    assert response.headers["request-id"].startswith("req_")
    body = await response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert text in body["error"]["message"]


async def assert_still_serving(http: aiohttp.ClientSession, gateway: RunningServer) -> None:
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS
    ) as r:
        assert r.status == 200


BAD_BODIES = [
    (
        b'{"model": "claude-haiku-4-5", "messages": [',
        400,
        "invalid_request_error",
        "not valid JSON",
    ),
    (b"", 400, "invalid_request_error", "not valid JSON"),
    (b'{"model": "caf\xe9"}', 400, "invalid_request_error", "not valid UTF-8"),
    (b'["a", "list"]', 400, "invalid_request_error", "must be a JSON object"),
    (b'{"model": "claude-haiku-4-5", "stream": "yes"}', 400, "invalid_request_error", "stream"),
    (
        b'{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [], "model": "claude-x"}',
        400,
        "invalid_request_error",
        "'model' twice",
    ),
]


@pytest.mark.parametrize(("raw", "status", "error_type", "text"), BAD_BODIES)
async def test_bad_bodies(
    gateway: RunningServer,
    http: aiohttp.ClientSession,
    raw: bytes,
    status: int,
    error_type: str,
    text: str,
) -> None:
    async with http.post(f"{gateway.url}/v1/messages", data=raw, headers=API_HEADERS) as r:
        await assert_error(r, status, error_type, text)
    await assert_still_serving(http, gateway)


async def test_wrong_content_type(gateway: RunningServer, http: aiohttp.ClientSession) -> None:
    headers = {**API_HEADERS, "content-type": "text/plain"}
    async with http.post(f"{gateway.url}/v1/messages", data=b"{}", headers=headers) as r:
        await assert_error(r, 415, "invalid_request_error", "application/json")
    await assert_still_serving(http, gateway)


async def test_body_over_the_limit(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, max_body_bytes=10_000)
    big = message_body("x" * 20_000)
    async with http.post(f"{gateway.url}/v1/messages", json=big, headers=API_HEADERS) as r:
        await assert_error(r, 413, "request_too_large", "10000 bytes")

    # A chunked upload declares no length; it is refused while being read.
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(30):
            yield b" " * 1000

    async with http.post(f"{gateway.url}/v1/messages", data=chunks(), headers=API_HEADERS) as r:
        await assert_error(r, 413, "request_too_large", "10000 bytes")
    await assert_still_serving(http, gateway)


async def test_unknown_route_and_wrong_method(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway.url}/v1/nothing-here", headers=API_HEADERS) as r:
        await assert_error(r, 404, "not_found_error", "Not Found")
    async with http.get(f"{gateway.url}/v1/messages", headers=API_HEADERS) as r:
        await assert_error(r, 405, "invalid_request_error", "Method Not Allowed")
    await assert_still_serving(http, gateway)


async def test_invalid_request_is_answered_by_upstream_validation(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    # The gateway does not second-guess the API's schema: the upstream's 400 names the field.
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=API_HEADERS) as r:
        await assert_error(r, 400, "invalid_request_error", "max_tokens")
