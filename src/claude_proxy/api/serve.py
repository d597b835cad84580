"""Serve one API route through the pipeline: the call, its stages, its answer, its record.

Each API handler is ``serve(request, route, answer)``: the request becomes a ``Call``,
the route's chain runs its request stages, ``answer`` produces the response (through
the upstream-call service), and the entered stages are told how it ended. The
response is sent before that, so the metrics and the log line are the gateway's
cost, not the client's wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from claude_proxy.api.ingress import call_from_request
from claude_proxy.errors import GatewayError
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.pipeline.chain import Run
from claude_proxy.pipeline.stage import Outcome
from claude_proxy.pipeline.stages.policies import POLICY, POLICY_HEADER
from claude_proxy.pipeline.stages.prompt_cache import PROMPT_CACHE, PROMPT_CACHE_HEADER
from claude_proxy.pipeline.stages.response_cache import RESPONSE_CACHE, RESPONSE_CACHE_HEADER
from claude_proxy.pipeline.stages.sessions import DROPPED, DROPPED_HEADER
from claude_proxy.responses import error_response, gateway_error_response
from claude_proxy.services import SERVICES

__all__ = ["ATTEMPTS_HEADER", "OVERHEAD_HEADER", "Answer", "reply_headers", "serve"]

ATTEMPTS_HEADER = "x-proxy-attempts"
OVERHEAD_HEADER = "x-proxy-overhead-ms"
_log = logging.getLogger("claude_proxy.api")

Answer = Callable[[web.Request, Run], Awaitable[web.StreamResponse]]
"""Produces the response of a call whose request stages have passed."""


async def serve(request: web.Request, route: Route, answer: Answer) -> web.StreamResponse:
    services = request.app[SERVICES]
    call = call_from_request(request, route, services.settings.max_body_bytes)
    # A whole answer's slot is released once the handler is done, in the background: on
    # Redis that is a round trip that neither this client nor its next request on the
    # connection (served after this handler returns) waits for.
    call.after_reply = []
    try:
        return await _serve(request, call, answer)
    finally:
        jobs, call.after_reply = call.after_reply, None
        if jobs:
            services.calls.settle_later(jobs)


async def _serve(request: web.Request, call: Call, answer: Answer) -> web.StreamResponse:
    services = request.app[SERVICES]
    run = services.pipeline.start(call)
    response: web.StreamResponse
    try:
        await run.request()
        response = await answer(request, run)
        outcome = Outcome(response.status)
    except GatewayError as exc:
        response = gateway_error_response(exc, call.request_id)
        outcome = Outcome(exc.status, exc.error_type)
    except asyncio.CancelledError:
        # The client went away (aiohttp cancels the handler): still one record of it,
        # as a disconnect unless it had the whole answer already.
        generation = call.generation
        run.fail(asyncio.CancelledError(), answered=generation is not None and generation.answered)
        raise
    except Exception:
        _log.exception("unhandled error", extra={"request_id": call.request_id})
        response = error_response(500, "api_error", "Internal gateway error.", call.request_id)
        outcome = Outcome(500, "api_error")
    if not response.prepared:
        reply_headers(response.headers, call)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:
            outcome = Outcome(499, "client_disconnect")
    run.finish(outcome)
    return response


def reply_headers(headers: CIMultiDict[str], call: Call) -> None:
    """The gateway's headers on an API response: request id, attempts, its own time, and
    what the stages report (a session's dropped turns, the response cache's verdict, the
    generation policies applied)."""
    headers.setdefault("request-id", call.request_id)
    log = call.attempts
    headers[ATTEMPTS_HEADER] = str(log.count if log is not None else 0)
    headers[OVERHEAD_HEADER] = f"{call.mark_overhead() * 1000:.2f}"
    if (dropped := call.state.get(DROPPED)) is not None:
        headers[DROPPED_HEADER] = str(dropped)
    if (cached := call.state.get(RESPONSE_CACHE)) is not None:
        headers[RESPONSE_CACHE_HEADER] = cached
    if (policy := call.state.get(POLICY)) is not None:
        headers[POLICY_HEADER] = policy.header()
    if (prompt_cache := call.state.get(PROMPT_CACHE)) is not None:
        headers[PROMPT_CACHE_HEADER] = prompt_cache.header
