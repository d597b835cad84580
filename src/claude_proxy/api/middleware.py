"""The one middleware: a request id on every response, errors in the Anthropic shape."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from claude_proxy.errors import GatewayError, error_response, new_request_id

__all__ = ["REQUEST_ID", "error_middleware"]

REQUEST_ID = web.RequestKey("request_id", str)
_log = logging.getLogger("claude_proxy.api")

# aiohttp's own refusals (unknown route, wrong method, oversized body) mapped to the API's types.
_HTTP_ERROR_TYPES = {
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except GatewayError as exc:
        return exc.to_response(request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_type = _HTTP_ERROR_TYPES.get(exc.status, "invalid_request_error")
        return error_response(exc.status, error_type, exc.reason, request_id)
    except Exception:
        _log.exception("unhandled error", extra={"request_id": request_id})
        return error_response(500, "api_error", "Internal gateway error.", request_id)
    if "request-id" not in response.headers and not response.prepared:
        response.headers["request-id"] = request_id
    return response
