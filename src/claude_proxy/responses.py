"""aiohttp responses in the Anthropic error shape, for the gateway and the simulator."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from claude_proxy.errors import GatewayError, error_body

__all__ = ["error_response", "gateway_error_response"]


def error_response(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An aiohttp response carrying an Anthropic-shaped error and a ``request-id``."""
    response = web.Response(
        status=status,
        body=error_body(error_type, message, request_id),
        content_type="application/json",
    )
    response.headers["request-id"] = request_id
    if headers:
        response.headers.update(headers)
    return response


def gateway_error_response(error: GatewayError, request_id: str) -> web.Response:
    return error_response(error.status, error.error_type, error.message, request_id, error.headers)
