"""The gateway's two middlewares: request ids, and errors in the Anthropic shape.

API calls are recorded by the pipeline (its ``record`` stage); these two cover every
response, API or not: each carries a ``request-id``, and aiohttp's own refusals
(unknown route, wrong method) and unexpected exceptions leave as Anthropic errors.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from claude_proxy.api.ingress import REQUEST_ID, STARTED
from claude_proxy.errors import GatewayError, new_request_id
from claude_proxy.responses import error_response, gateway_error_response
from claude_proxy.services import SERVICES

__all__ = ["error_middleware", "request_id_middleware"]

_log = logging.getLogger("claude_proxy.api")

# aiohttp's own refusals (unknown route, wrong method, oversized body) mapped to the API's types.
_HTTP_ERROR_TYPES = {
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
}


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[STARTED] = time.perf_counter()
    services = request.app.get(SERVICES)
    request_id = request[REQUEST_ID] = (
        services.request_ids() if services is not None else new_request_id()
    )
    response = await handler(request)
    if not response.prepared and "request-id" not in response.headers:
        response.headers["request-id"] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request[REQUEST_ID]
    try:
        return await handler(request)
    except GatewayError as exc:
        return gateway_error_response(exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_type = _HTTP_ERROR_TYPES.get(exc.status, "invalid_request_error")
        return error_response(exc.status, error_type, exc.reason, request_id)
    except Exception:
        _log.exception("unhandled error", extra={"request_id": request_id})
        return error_response(500, "api_error", "Internal gateway error.", request_id)
