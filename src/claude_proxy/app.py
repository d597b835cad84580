"""Build the gateway's aiohttp application from Settings, and run it."""

from __future__ import annotations

from aiohttp import web

from claude_proxy.api.middleware import error_middleware, request_id_middleware
from claude_proxy.api.routes import add_routes
from claude_proxy.config import Settings
from claude_proxy.services import EXTRA_STAGES, SETTINGS, StageFactory, services_context

__all__ = ["create_app"]


def create_app(settings: Settings, *, extra_stages: StageFactory | None = None) -> web.Application:
    """The gateway as an aiohttp app; its services start with the app and close with it.

    ``extra_stages``: stages of an embedding application, run after the gateway's own
    but before the response cache, which stays last (see ``pipeline.stage`` for what a
    stage is).
    """
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_id_middleware, error_middleware],
    )
    app[SETTINGS] = settings
    if extra_stages is not None:
        app[EXTRA_STAGES] = extra_stages
    app.cleanup_ctx.append(services_context)
    add_routes(app)
    return app
