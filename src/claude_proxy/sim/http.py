"""What every simulated endpoint shares: the request id, JSON answers, authentication."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from claude_proxy.errors import AuthenticationFailed, InvalidRequest
from claude_proxy.sim.state import STATE

__all__ = [
    "REQUEST_ID",
    "betas",
    "bytes_response",
    "check_headers",
    "header_float",
    "json_response",
]

REQUEST_ID = web.RequestKey("sim_request_id", str)


def json_response(payload: Any, request: web.Request, status: int = 200) -> web.Response:
    return bytes_response(orjson.dumps(payload), "application/json", request, status)


def bytes_response(
    body: bytes, content_type: str, request: web.Request, status: int = 200
) -> web.Response:
    response = web.Response(body=body, status=status, content_type=content_type)
    response.headers["request-id"] = request[REQUEST_ID]
    return response


def header_float(request: web.Request, name: str) -> float | None:
    """A numeric request header (None when absent); anything else is a clear 400."""
    raw = request.headers.get(name)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        raise InvalidRequest(f"{name}: must be a number") from None


def check_headers(request: web.Request) -> str:
    """Authenticate and return the anthropic-version (any value is accepted)."""
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
    if not key:
        raise AuthenticationFailed("x-api-key header is required")
    expected = request.app[STATE].settings.api_key
    if expected is not None and key != expected:
        raise AuthenticationFailed("invalid x-api-key")
    version = request.headers.get("anthropic-version")
    if not version:
        raise InvalidRequest("anthropic-version: header is required")
    return version


def betas(request: web.Request) -> frozenset[str]:
    """The ``anthropic-beta`` features asked for (comma-separated, one header or several)."""
    return frozenset(
        name.strip()
        for header in request.headers.getall("anthropic-beta", ())
        for name in header.split(",")
        if name.strip()
    )
