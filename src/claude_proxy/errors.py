"""Errors in the Anthropic shape, shared by the gateway and the simulator (no HTTP types:
``claude_proxy.responses`` turns them into aiohttp responses).

Every error that leaves either server is a JSON body
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``
with the HTTP status the real API uses for that ``error.type``.

Exception tree::

    GatewayError                 any error the gateway answers itself
    ├── InvalidRequest           400 invalid_request_error
    ├── AuthenticationFailed     401 authentication_error
    ├── PermissionDenied         403 permission_error
    ├── NotFound                 404 not_found_error
    ├── RequestTimeout           408 timeout_error (a request body that came too slowly)
    ├── RequestTooLarge          413 request_too_large
    ├── UnsupportedMediaType     415 invalid_request_error
    ├── RateLimited              429 rate_limit_error
    ├── UpstreamUnavailable      502 api_error (upstream unreachable / broken)
    │   └── UpstreamUnreachable  502 api_error (could not connect: nothing was sent)
    ├── UpstreamTimeout          504 timeout_error
    └── Overloaded               529 overloaded_error
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

import orjson

__all__ = [
    "AuthenticationFailed",
    "GatewayError",
    "InvalidRequest",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "RateLimited",
    "RequestIds",
    "RequestTimeout",
    "RequestTooLarge",
    "UnsupportedMediaType",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UpstreamUnreachable",
    "error_body",
    "new_request_id",
]

# token_urlsafe is one call per id (cheap on the hot path); the API's ids are
# alphanumeric, so its two symbols are mapped onto letters.
_ALPHANUMERIC = str.maketrans({"-": "x", "_": "Z"})


def new_id(prefix: str, length: int = 24) -> str:
    """An id in the API's style: ``req_011C…``, ``msg_01…``, ``toolu_01…``."""
    return prefix + secrets.token_urlsafe(length)[:length].translate(_ALPHANUMERIC)


def new_request_id() -> str:
    return new_id("req_011C")


class RequestIds:
    """Unique request ids without a system call each: a random prefix and a counter.

    A request id correlates logs; it guards nothing, so it need not be unpredictable
    (stream ids, which do guard something, stay fully random).
    """

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = new_id("req_011C", 12)
        self._count = 0

    def __call__(self) -> str:
        self._count += 1
        return f"{self._prefix}{self._count:012d}"


def error_body(error_type: str, message: str, request_id: str | None = None) -> bytes:
    body: dict[str, object] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


class GatewayError(Exception):
    """An error the gateway answers itself, in the Anthropic error shape."""

    status: int = 500
    error_type: str = "api_error"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    error_type = "authentication_error"


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"


class NotFound(GatewayError):
    status = 404
    error_type = "not_found_error"


class RequestTimeout(GatewayError):
    """A request body that did not arrive in time: 408, which the SDKs retry."""

    status = 408
    error_type = "timeout_error"


class RequestTooLarge(GatewayError):
    status = 413
    error_type = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    error_type = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"


class UpstreamUnavailable(GatewayError):
    status = 502
    error_type = "api_error"


class UpstreamUnreachable(UpstreamUnavailable):
    """The connection could not be made, so the request never left: any method may be
    tried again, a POST that creates something included."""


class UpstreamTimeout(GatewayError):
    status = 504
    error_type = "timeout_error"


class Overloaded(GatewayError):
    status = 529
    error_type = "overloaded_error"
