"""The route table: every path the gateway serves, in one place."""

from __future__ import annotations

from aiohttp import web

from claude_proxy.api import documents, health, messages, relay, sessions, streams, websocket
from claude_proxy.api.observability import add_observability_routes

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages.create_message)
    app.router.add_post("/v1/messages/count_tokens", messages.count_tokens)
    app.router.add_post("/v1/documents", documents.create_document)
    app.router.add_get("/v1/sessions", sessions.list_sessions)
    app.router.add_get("/v1/sessions/{session_id}", sessions.get_session)
    app.router.add_delete("/v1/sessions/{session_id}", sessions.delete_session)
    app.router.add_get("/v1/streams/{stream_id}", streams.resume_stream)
    app.router.add_get("/v1/ws", websocket.websocket_endpoint)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    add_observability_routes(app)
    # Last: every other /v1 route (models, batches, files, ...) goes to the API as it is.
    app.router.add_route("*", "/v1/{tail:.*}", relay.relay_call)
