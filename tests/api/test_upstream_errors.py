"""Upstream errors reach the client with their status, body and retry-after."""

from __future__ import annotations

import socket

import aiohttp
import anthropic
import pytest

from claude_proxy.config import RetrySettings
from claude_proxy.server import RunningServer
from tests.conftest import StartGateway
from tests.helpers import API_HEADERS, message_body


@pytest.fixture
def gateway(plain_gateway: RunningServer) -> RunningServer:
    """These tests look at what one upstream attempt does: no retries, no healing."""
    return plain_gateway


@pytest.mark.parametrize(
    ("fault", "status", "error_type"),
    [("429", 429, "rate_limit_error"), ("529", 529, "overloaded_error"), ("500", 500, "api_error")],
)
async def test_upstream_error_status_body_and_headers_pass_through(
    gateway: RunningServer, http: aiohttp.ClientSession, fault: str, status: int, error_type: str
) -> None:
    headers = {**API_HEADERS, "x-sim-fault": fault, "x-sim-retry-after": "7"}
    async with http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=headers) as r:
        assert r.status == status
        body = await r.json()
        assert body["type"] == "error" and body["error"]["type"] == error_type
        assert r.headers["request-id"].startswith("req_")
        if fault == "429":
            assert r.headers["retry-after"] == "7"


async def test_sdk_sees_the_right_exception_classes(gateway: RunningServer) -> None:
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(
            **message_body(), extra_headers={"x-sim-fault": "429", "x-sim-retry-after": "0"}
        )
    with pytest.raises(anthropic.InternalServerError) as info:
        await client.messages.create(**message_body(), extra_headers={"x-sim-fault": "529"})
    assert info.value.status_code == 529


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_upstream_is_a_502_in_the_api_shape(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(
        f"http://127.0.0.1:{free_port()}", retry=RetrySettings(max_attempts=1)
    )
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS
    ) as r:
        assert r.status == 502
        body = await r.json()
        assert body["error"]["type"] == "api_error"
        assert "could not connect" in body["error"]["message"]
        assert r.headers["request-id"].startswith("req_")


async def test_upstream_reset_before_response_is_a_502(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    headers = {**API_HEADERS, "x-sim-fault": "reset"}
    async with http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=headers) as r:
        assert r.status == 502
        assert (await r.json())["error"]["type"] == "api_error"
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS
    ) as r:
        assert r.status == 200
