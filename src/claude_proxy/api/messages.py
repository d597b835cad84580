"""Handlers for the Messages API routes: /v1/messages, count_tokens and models.

Each handler is the pipeline for its route, read top to bottom:
read and check the body -> authenticate the tenant -> wait for admission ->
forward upstream (retries, failover, healing) -> relay -> release with usage.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from claude_proxy.api.middleware import REQUEST_ID
from claude_proxy.errors import Overloaded
from claude_proxy.pipeline.admit import admit, authenticate, finish
from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.ingress import check_peer, read_call
from claude_proxy.services import SERVICES, Services
from claude_proxy.streaming.relay import ATTEMPTS_HEADER, ClientDisconnected, relay_stream
from claude_proxy.upstream.headers import downstream_headers, upstream_headers

__all__ = ["count_tokens", "create_message", "get_model", "list_models"]


async def create_message(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    call = await _begin(request, services)
    tenant = authenticate(services.tenants, call)
    ticket = await admit(services.admission, tenant, call)
    overloaded = False
    try:
        response, overloaded = await _forward(request, services, call)
        return response
    finally:
        await finish(services.admission, ticket, call, overloaded)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """Token counting is free upstream: authenticated, but not admitted against limits."""
    services = request.app[SERVICES]
    call = await _begin(request, services)
    authenticate(services.tenants, call)
    response, _ = await _forward(request, services, call)
    return response


async def list_models(request: web.Request) -> web.StreamResponse:
    return await _forward_get(request)


async def get_model(request: web.Request) -> web.StreamResponse:
    return await _forward_get(request)


async def _begin(request: web.Request, services: Services) -> Call:
    if services.check_peers:
        check_peer(request)
    return await read_call(request, request[REQUEST_ID], services.settings.max_body_bytes)


async def _forward(
    request: web.Request, services: Services, call: Call
) -> tuple[web.StreamResponse, bool]:
    """The response, and whether the API said it was overloaded on the way."""
    forwarder = services.forwarder
    log = forwarder.start(call)
    if call.stream:
        try:
            return await relay_stream(request, forwarder, log), log.overloaded
        except ClientDisconnected:
            # The upstream response was closed on the way out: generation stops.
            return web.Response(status=499), log.overloaded
    reply = await forwarder.send_json(log)
    if reply.status == 200:
        call.usage = _usage_of(reply.body)
    reply.headers.setdefault("request-id", call.request_id)
    reply.headers[ATTEMPTS_HEADER] = str(log.count)
    response = web.Response(status=reply.status, body=reply.body, headers=reply.headers)
    return response, log.overloaded


def _usage_of(body: bytes) -> dict[str, object] | None:
    try:
        usage = orjson.loads(body).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None


async def _forward_get(request: web.Request) -> web.StreamResponse:
    """Model listings: read-only and cheap, so one attempt on any available deployment."""
    services = request.app[SERVICES]
    if services.check_peers:
        check_peer(request)
    services.tenants.authenticate(request.headers)
    deployment = services.router.choose()
    if deployment is None:
        raise Overloaded("No upstream deployment is available (all cooling down or open).")
    client = deployment.client
    headers = upstream_headers(request.headers, client.api_key)
    async with client.request("GET", request.path_qs, headers) as response:
        out_headers = downstream_headers(response.headers)
        out_headers.setdefault("request-id", request[REQUEST_ID])
        body = await response.read()
        return web.Response(status=response.status, body=body, headers=out_headers)
