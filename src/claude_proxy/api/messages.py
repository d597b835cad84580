"""Handlers for the Messages API routes: /v1/messages, count_tokens and models.

Each handler is the pipeline for its route, read top to bottom:
read and check the body -> authenticate the tenant -> wait for admission ->
forward upstream (retries, failover, healing) -> relay -> release with usage.
The middleware records the result (metrics, request log) whatever happens.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from claude_proxy.admission import Ticket
from claude_proxy.api.middleware import RECORD, REQUEST_ID
from claude_proxy.errors import Overloaded
from claude_proxy.pipeline.admit import admit, authenticate, finish
from claude_proxy.pipeline.call import Call
from claude_proxy.pipeline.ingress import check_peer, read_call
from claude_proxy.pipeline.record import OVERHEAD_HEADER, Record
from claude_proxy.pipeline.stream import make_generation, open_upstream_stream
from claude_proxy.replay import STREAM_ID_HEADER
from claude_proxy.services import SERVICES, Services
from claude_proxy.streaming.relay import ATTEMPTS_HEADER
from claude_proxy.streaming.streams import SseSink
from claude_proxy.tenancy import Tenant
from claude_proxy.upstream.forwarder import UpstreamReply
from claude_proxy.upstream.headers import downstream_headers, upstream_headers

__all__ = ["count_tokens", "create_message", "get_model", "list_models"]


async def create_message(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    record = request[RECORD]
    call = await _begin(request, services, record)
    tenant = authenticate(services.tenants, call)
    record.tenant = tenant.name
    ticket = await admit(services.admission, tenant, call, record)
    if call.stream:
        return await _stream(request, services, call, tenant, ticket, record)
    overloaded = False
    try:
        response, overloaded = await _forward_json(services, call, record)
        return response
    finally:
        await finish(services.admission, ticket, call, overloaded)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """Token counting is free upstream: authenticated, but not admitted against limits."""
    services = request.app[SERVICES]
    record = request[RECORD]
    call = await _begin(request, services, record)
    record.tenant = authenticate(services.tenants, call).name
    response, _ = await _forward_json(services, call, record)
    return response


async def list_models(request: web.Request) -> web.StreamResponse:
    return await _forward_get(request)


async def get_model(request: web.Request) -> web.StreamResponse:
    return await _forward_get(request)


async def _begin(request: web.Request, services: Services, record: Record) -> Call:
    if services.check_peers:
        check_peer(request)
    call = await read_call(request, request[REQUEST_ID], services.settings.max_body_bytes)
    record.begin(services.metrics, call)
    return call


async def _forward_json(
    services: Services, call: Call, record: Record
) -> tuple[web.Response, bool]:
    """The response, and whether the API said it was overloaded on the way."""
    log = record.attempts = services.forwarder.start(call)
    reply = await services.forwarder.send_json(log)
    if reply.status == 200:
        call.usage = _usage_of(reply.body)
    return _reply_response(reply, call, record), log.overloaded


async def _stream(
    request: web.Request,
    services: Services,
    call: Call,
    tenant: Tenant,
    ticket: Ticket,
    record: Record,
) -> web.StreamResponse:
    """Open the upstream stream, then let a generation relay it; the ticket goes with it."""
    opened = await open_upstream_stream(
        services, call, tenant, ticket, record, resumable=services.streams.replay is not None
    )
    if isinstance(opened, UpstreamReply):
        return _reply_response(opened, call, record)
    headers = opened.stream.headers
    headers.setdefault("request-id", call.request_id)
    headers["cache-control"] = "no-cache"
    # Ask reverse proxies in front of us (nginx) not to buffer the stream either.
    headers["x-accel-buffering"] = "no"
    headers[ATTEMPTS_HEADER] = str(record.attempts.count if record.attempts else 0)
    if opened.stream_id is not None:
        headers[STREAM_ID_HEADER] = opened.stream_id
    headers[OVERHEAD_HEADER] = record.overhead_header()
    response = web.StreamResponse(status=200, headers=headers)
    generation = make_generation(
        services, call, ticket, record, opened, SseSink(response, opened.stream_id)
    )
    try:
        await response.prepare(request)
    except BaseException:
        await generation.abandon()
        raise
    await services.streams.serve(generation)
    return response


def _reply_response(reply: UpstreamReply, call: Call, record: Record) -> web.Response:
    reply.headers.setdefault("request-id", call.request_id)
    log = record.attempts
    reply.headers[ATTEMPTS_HEADER] = str(log.count if log is not None else 0)
    reply.headers[OVERHEAD_HEADER] = record.overhead_header()
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


def _usage_of(body: bytes) -> dict[str, object] | None:
    # The API puts usage last: parse just that object when it is, the whole body if not.
    start = body.rfind(b'"usage":')
    if start > 0 and body.endswith(b"}}"):
        try:
            usage = orjson.loads(body[start + 8 : -1])
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(usage, dict):
                return usage
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
    request[RECORD].tenant = services.tenants.authenticate(request.headers).name
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
