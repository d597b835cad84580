"""The route table: every path the gateway serves, in one place."""

from __future__ import annotations

from aiohttp import web

from claude_proxy.api import health, messages, streams, websocket
from claude_proxy.api.observability import add_observability_routes

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages.create_message)
    app.router.add_post("/v1/messages/count_tokens", messages.count_tokens)
    app.router.add_get("/v1/models", messages.list_models)
    app.router.add_get("/v1/models/{model_id}", messages.get_model)
    app.router.add_get("/v1/streams/{stream_id}", streams.resume_stream)
    app.router.add_get("/v1/ws", websocket.websocket_endpoint)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    add_observability_routes(app)
