"""The one middleware: request ids, errors in the Anthropic shape, and each API call recorded.

Every response carries a ``request-id``; responses to API calls (``/v1/...``) also
carry ``x-proxy-overhead-ms``, and each API call is counted in the metrics and
written as one line of the request log, whether its handler returned, raised, or
was cancelled by a client that went away.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from claude_proxy.errors import GatewayError, error_response, new_request_id
from claude_proxy.observability.labels import OTHER
from claude_proxy.pipeline.record import OVERHEAD_HEADER, Record, close_record
from claude_proxy.services import SERVICES, Services

__all__ = ["RECORD", "REQUEST_ID", "error_middleware"]

REQUEST_ID = web.RequestKey("request_id", str)
RECORD = web.RequestKey("record", Record)
_log = logging.getLogger("claude_proxy.api")
_API_PREFIX = "/v1/"

# aiohttp's own refusals (unknown route, wrong method, oversized body) mapped to the API's types.
_HTTP_ERROR_TYPES = {
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app.get(SERVICES)
    request_id = services.request_ids() if services is not None else new_request_id()
    request[REQUEST_ID] = request_id
    record: Record | None = None
    if request.path.startswith(_API_PREFIX):
        record = request[RECORD] = Record(request_id, time.perf_counter())
    error_type: str | None = None
    try:
        response = await handler(request)
    except GatewayError as exc:
        response = exc.to_response(request_id)
        error_type = exc.error_type
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_type = _HTTP_ERROR_TYPES.get(exc.status, "invalid_request_error")
        response = error_response(exc.status, error_type, exc.reason, request_id)
    except asyncio.CancelledError:
        # The client went away (aiohttp cancels the handler): still one record of it,
        # as a disconnect unless it had the whole answer already.
        if record is not None:
            if record.answered:
                _close(services, request, record, 200, None)
            else:
                _close(services, request, record, 499, "client_disconnect")
        raise
    except Exception:
        _log.exception("unhandled error", extra={"request_id": request_id})
        error_type = "api_error"
        response = error_response(500, error_type, "Internal gateway error.", request_id)
    if not response.prepared:
        if "request-id" not in response.headers:
            response.headers["request-id"] = request_id
        if record is not None and OVERHEAD_HEADER not in response.headers:
            response.headers[OVERHEAD_HEADER] = record.overhead_header()
        if record is not None:
            # Send the answer before recording it: the metrics and the log line are our
            # cost, not the client's wait (aiohttp would send it only after we return;
            # prepare and write_eof are no-ops for it then).
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionError:
                _close(services, request, record, 499, "client_disconnect")
                return response
    if record is not None:
        _close(services, request, record, response.status, error_type)
    return response


def _close(
    services: Services | None,
    request: web.Request,
    record: Record,
    status: int,
    error_type: str | None,
) -> None:
    # A handler that records its work itself (the WebSocket endpoint) removes the record.
    if services is not None and request.get(RECORD) is record:
        if record.tenant is None and not services.tenants.is_open:
            record.tenant = OTHER  # not authenticated: no tenant's label may be claimed
        close_record(record, services.metrics, services.request_log, status, error_type)
