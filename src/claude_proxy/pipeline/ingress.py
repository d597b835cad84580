"""Stage 1: turn an HTTP request into a Call, refusing bad input with a clear 4xx.

Checks, in order: the peer may use an unauthenticated gateway, the body is not
over the size limit, it is declared and encoded as JSON, it is a JSON object.
The body is parsed exactly once here.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import orjson
from aiohttp import web

from claude_proxy.errors import (
    InvalidRequest,
    PermissionDenied,
    RequestTooLarge,
    UnsupportedMediaType,
)
from claude_proxy.pipeline.call import Call

__all__ = ["check_peer", "read_call"]


def check_peer(request: web.Request) -> None:
    """Refuse non-loopback peers when there is no way to authenticate them."""
    remote = request.remote
    try:
        loopback = remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise PermissionDenied(
            "this gateway has no tenants configured and only serves clients on its own host; "
            "configure tenants (or allow_remote_without_auth) to accept remote clients"
        )


async def read_call(request: web.Request, request_id: str, max_body_bytes: int) -> Call:
    started_at = time.perf_counter()
    length = request.content_length
    if length is not None and length > max_body_bytes:
        raise RequestTooLarge(_too_large(max_body_bytes))
    _check_content_type(request.content_type)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestTooLarge(_too_large(max_body_bytes)) from None
    body = _parse_object(raw)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean")
    return Call(
        request_id=request_id,
        path=request.path,
        headers=request.headers,
        raw_body=raw,
        body=body,
        stream=stream,
        started_at=started_at,
    )


def _too_large(limit: int) -> str:
    return f"Request body exceeds the gateway's limit of {limit} bytes."


def _check_content_type(content_type: str) -> None:
    # aiohttp reports a missing header as application/octet-stream.
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {content_type!r}.")


def _parse_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in str(exc):
            raise InvalidRequest("Request body is not valid UTF-8.") from None
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object.")
    return body
