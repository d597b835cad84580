"""Build the gateway's aiohttp application from Settings, and run it."""

from __future__ import annotations

from aiohttp import web

from claude_proxy.api.middleware import error_middleware
from claude_proxy.api.routes import add_routes
from claude_proxy.config import Settings
from claude_proxy.services import SETTINGS, services_context

__all__ = ["create_app"]


def create_app(settings: Settings) -> web.Application:
    """The gateway as an aiohttp app; its services start with the app and close with it."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware],
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(services_context)
    add_routes(app)
    return app
