"""Handlers for the Messages API routes: /v1/messages, count_tokens and models.

Each handler is the pipeline for its route, read top to bottom:
peer check -> read and validate the body -> forward upstream -> relay the answer.
"""

from __future__ import annotations

from aiohttp import web

from claude_proxy.api.middleware import REQUEST_ID
from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.ingress import check_peer, read_call
from claude_proxy.services import SERVICES, Services
from claude_proxy.streaming.relay import ClientDisconnected, relay_json, relay_sse
from claude_proxy.upstream.headers import downstream_headers, upstream_headers

__all__ = ["count_tokens", "create_message", "get_model", "list_models"]

_EVENT_STREAM = "text/event-stream"


async def create_message(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    call = await _begin(request, services)
    return await _forward(request, services, call)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    call = await _begin(request, services)
    return await _forward(request, services, call)


async def list_models(request: web.Request) -> web.StreamResponse:
    return await _forward_get(request)


async def get_model(request: web.Request) -> web.StreamResponse:
    return await _forward_get(request)


async def _begin(request: web.Request, services: Services) -> Call:
    if services.check_peers:
        check_peer(request)
    return await read_call(request, request[REQUEST_ID], services.settings.max_body_bytes)


async def _forward(request: web.Request, services: Services, call: Call) -> web.StreamResponse:
    upstream = services.upstream
    headers = upstream_headers(call.headers, upstream.api_key)
    async with upstream.request("POST", call.path, headers, call.raw_body) as response:
        out_headers = downstream_headers(response.headers)
        out_headers.setdefault("request-id", call.request_id)
        if response.content_type == _EVENT_STREAM:
            try:
                return await relay_sse(request, response, out_headers, upstream.name)
            except ClientDisconnected:
                # Leaving the block closes the upstream connection: generation stops.
                return web.Response(status=499)
        return await relay_json(response, out_headers)


async def _forward_get(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    if services.check_peers:
        check_peer(request)
    upstream = services.upstream
    headers = upstream_headers(request.headers, upstream.api_key)
    async with upstream.request("GET", request.path_qs, headers) as response:
        out_headers = downstream_headers(response.headers)
        out_headers.setdefault("request-id", request[REQUEST_ID])
        return await relay_json(response, out_headers)
