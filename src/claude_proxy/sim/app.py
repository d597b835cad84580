"""create_sim_app: the aiohttp application, its routes and the error/accounting middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from claude_proxy.errors import GatewayError, new_request_id
from claude_proxy.responses import error_response, gateway_error_response
from claude_proxy.sim import handlers, resources
from claude_proxy.sim.journal import JOURNAL
from claude_proxy.sim.settings import SimSettings
from claude_proxy.sim.state import STATE, SimState

__all__ = ["create_sim_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ENDPOINTS = {
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
}


def _endpoint(path: str) -> str:
    if path in _ENDPOINTS:
        return _ENDPOINTS[path]
    for prefix in ("/v1/models", "/v1/messages/batches", "/v1/files"):
        if path.startswith(prefix):
            return prefix.rsplit("/", 1)[1]
    return "other"


def _http_error(exc: web.HTTPException, request_id: str) -> web.Response:
    """aiohttp's own errors (no route, wrong method) in the Anthropic shape."""
    if exc.status == 404:
        return error_response(404, "not_found_error", "Not Found", request_id)
    if exc.status == 413:
        return error_response(
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
            request_id,
        )
    if exc.status == 405:
        return error_response(405, "invalid_request_error", "Method Not Allowed", request_id)
    error_type = "invalid_request_error" if exc.status < 500 else "api_error"
    return error_response(exc.status, error_type, exc.reason, request_id)


@web.middleware
async def _envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, Anthropic-shaped errors and in-flight accounting for every request."""
    request_id = new_request_id()
    request[handlers.REQUEST_ID] = request_id
    state = request.app[STATE]
    counted = not request.path.startswith("/sim/")
    if counted:
        state.stats.enter(_endpoint(request.path))
    status: int | None = None
    try:
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = gateway_error_response(exc, request_id)
        except web.HTTPException as exc:
            response = _http_error(exc, request_id)
        if not response.prepared and "request-id" not in response.headers:
            response.headers["request-id"] = request_id
        status = response.status
        return response
    finally:
        if counted:
            state.stats.leave(status)


def create_sim_app(
    settings: SimSettings | None = None, *, max_body_bytes: int = 32 * 1024 * 1024
) -> web.Application:
    """A fresh simulator: all state (fault RNG, cache, counters, journal) lives on this app."""
    app = web.Application(middlewares=[_envelope], client_max_size=max_body_bytes)
    app[STATE] = SimState.build(settings or SimSettings())
    app[JOURNAL] = app[STATE].journal
    app.router.add_post("/v1/messages", handlers.messages)
    app.router.add_post("/v1/messages/count_tokens", handlers.count_tokens)
    app.router.add_get("/v1/models", handlers.list_models)
    app.router.add_get("/v1/models/{model_id}", handlers.get_model)
    batches = "/v1/messages/batches"
    app.router.add_post(batches, resources.create_batch)
    app.router.add_get(batches, resources.list_batches)
    app.router.add_get(batches + "/{batch_id}", resources.retrieve_batch)
    app.router.add_delete(batches + "/{batch_id}", resources.delete_batch)
    app.router.add_post(batches + "/{batch_id}/cancel", resources.cancel_batch)
    app.router.add_get(batches + "/{batch_id}/results", resources.batch_results)
    app.router.add_post("/v1/files", resources.upload_file)
    app.router.add_get("/v1/files", resources.list_files)
    app.router.add_get("/v1/files/{file_id}", resources.file_metadata)
    app.router.add_delete("/v1/files/{file_id}", resources.delete_file)
    app.router.add_get("/v1/files/{file_id}/content", resources.download_file)
    app.router.add_get("/sim/stats", handlers.stats)
    app.router.add_post("/sim/stats/reset", handlers.reset_stats)
    app.router.add_get("/sim/journal", handlers.journal)
    app.router.add_delete("/sim/journal", handlers.clear_journal)
    app.on_cleanup.append(_stop_batches)
    return app


async def _stop_batches(app: web.Application) -> None:
    await app[STATE].batches.close()
