"""Ingress: an HTTP request becomes a ``Call``; its body is read only when the body stage asks.

The reader refuses, with a clear 4xx, a body over ``max_body_bytes`` (before reading
it when its length is declared) and one not declared as JSON. Everything else about
the body (JSON, an object, ``stream`` a boolean) is checked where it is parsed, in
``Call.load_body``.
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from claude_proxy.errors import RequestTooLarge, UnsupportedMediaType
from claude_proxy.pipeline.call import Call, Route

__all__ = ["REQUEST_ID", "STARTED", "call_from_request", "too_large"]

REQUEST_ID = web.RequestKey("request_id", str)
STARTED = web.RequestKey("started", float)


def call_from_request(request: web.Request, route: Route, max_body_bytes: int) -> Call:
    async def read_body() -> bytes:
        length = request.content_length
        if length is not None and length > max_body_bytes:
            raise RequestTooLarge(too_large(max_body_bytes))
        _check_content_type(request.content_type)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RequestTooLarge(too_large(max_body_bytes)) from None

    return Call.create(
        request[REQUEST_ID],
        route,
        method=request.method,
        path=upstream_path(request.raw_path),
        headers=request.headers,
        peer=request.remote,
        # A relayed call's body streams through unread, unless a stage needs to see it
        # (a model-limited tenant's message batch): then it reads it here, bounded.
        read_body=read_body if route.has_body or route is Route.RELAY else None,
        started=request[STARTED],
    )


def upstream_path(raw_path: str) -> str:
    """The path and query as the upstream will receive them.

    Building the upstream URL normalises them (``%62atches`` is ``batches``, dot segments
    are resolved): done here once, every stage judges the path the API will act on, not
    a spelling of it.
    """
    if "%" not in raw_path and "/." not in raw_path:
        return raw_path  # nothing to normalise: the usual case costs no URL parse
    return URL("http://gateway" + raw_path).raw_path_qs


def too_large(limit: int) -> str:
    return f"Request body exceeds the gateway's limit of {limit} bytes."


def _check_content_type(content_type: str) -> None:
    # aiohttp reports a missing header as application/octet-stream.
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {content_type!r}.")
