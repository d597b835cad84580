"""HTTP handlers of the simulated API: messages (JSON and SSE), count_tokens, models, stats,
journal."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from claude_proxy.errors import InvalidRequest, NotFound
from claude_proxy.sim.answer import answer, units
from claude_proxy.sim.faults import Fault, draw_fault, error_fault_response, parse_forced
from claude_proxy.sim.files import check_file_sources
from claude_proxy.sim.generation import Reply
from claude_proxy.sim.http import REQUEST_ID, betas, check_headers, header_float, json_response
from claude_proxy.sim.latency import Pacer, per_output_token, time_to_first_token, total_time
from claude_proxy.sim.models import active_models, lookup_model
from claude_proxy.sim.sse import encode, reply_events
from claude_proxy.sim.state import STATE, SimState
from claude_proxy.sim.tokens import total_input_tokens
from claude_proxy.sim.validation import parse_request

__all__ = [
    "REQUEST_ID",
    "clear_journal",
    "count_tokens",
    "get_model",
    "journal",
    "list_models",
    "messages",
    "reset_stats",
    "stats",
]

_MAX_HEADER_INT = 1_000_000  # bounds the memory one x-sim-answer-tokens request can take


def _header_int(request: web.Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: must be a positive integer") from None
    if not 1 <= value <= _MAX_HEADER_INT:
        raise InvalidRequest(f"{name}: must be an integer from 1 to {_MAX_HEADER_INT}")
    return value


def _choose_fault(request: web.Request, state: SimState) -> Fault | None:
    forced = request.headers.get("x-sim-fault")
    if forced:
        # x-sim-fault-times: N limits the forced fault to the first N requests that
        # carry it (and the same x-sim-fault-key): a retry or continuation then succeeds.
        times = _header_int(request, "x-sim-fault-times")
        if times is not None:
            key = request.headers.get("x-sim-fault-key", "") + "|" + forced
            state.forced_counts[key] += 1
            if state.forced_counts[key] > times:
                return None
        return parse_forced(forced)
    return draw_fault(state.rng, state.settings)


def _drop_connection(request: web.Request) -> web.Response:
    """Close the socket without an answer; the client sees a reset / disconnect."""
    if request.transport is not None:
        request.transport.abort()
    # aiohttp's attempt to send this fails quietly on the closed transport.
    return web.Response(status=500)


async def messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages: validate, maybe inject a fault, account the cache, reply."""
    state = request.app[STATE]
    settings = state.settings
    version = check_headers(request)
    raw = await request.read()
    state.journal.record(request.path, request[REQUEST_ID], raw)
    req = parse_request(raw, version, betas=betas(request))
    check_file_sources(state.files, req.messages)
    answer_tokens = _header_int(request, "x-sim-answer-tokens")
    fault = _choose_fault(request, state)
    if settings.fail_marker and settings.fail_marker.encode() in raw:
        fault = Fault("500")  # a request that fails however often it is sent
    if fault is not None:
        state.stats.faults[fault.kind] += 1
        if fault.kind == "slow":
            # An explicit stall, deliberately not scaled by `speed`.
            await asyncio.sleep(fault.after if fault.after >= 0 else settings.slow_first_byte)
            fault = None
        elif fault.is_status:
            retry_after = header_float(request, "x-sim-retry-after")
            if retry_after is None and fault.kind == "429":
                retry_after = settings.retry_after
            return error_fault_response(
                fault, request[REQUEST_ID], retry_after, request.headers.get("x-sim-should-retry")
            )
        elif fault.kind == "reset" or not req.stream:
            return _drop_connection(request)
    result = answer(state, req, answer_tokens)
    cache, reply = result.cache, result.reply
    latency, speed = settings.latency, settings.speed
    ttft = time_to_first_token(latency, speed, cache.prefilled, cache.cache_read)
    if req.stream:
        return await _stream(
            request,
            result.message,
            reply,
            result.usage,
            ttft,
            per_output_token(latency, speed),
            fault,
        )
    delay = total_time(latency, speed, cache.prefilled, cache.cache_read, reply.output_tokens)
    if delay > 0:
        await asyncio.sleep(delay)
    return json_response(result.whole(), request)


async def _stream(
    request: web.Request,
    message: dict[str, Any],
    reply: Reply,
    usage: dict[str, Any],
    ttft: float,
    per_token: float,
    fault: Fault | None,
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "request-id": request[REQUEST_ID],
        }
    )
    await response.prepare(request)
    pacer = Pacer(ttft, per_token)
    stop_at = int(fault.after) if fault is not None else -1
    try:
        for sent, (name, payload, produced) in enumerate(reply_events(message, reply, usage)):
            if sent == stop_at and fault is not None:
                await _break_stream(request, response, fault)
                return response
            if name == "content_block_delta":
                await pacer.until(produced)
            await response.write(encode(name, payload))
    except ConnectionError:
        pass  # the client went away mid-stream: nothing left to do
    return response


async def _break_stream(request: web.Request, response: web.StreamResponse, fault: Fault) -> None:
    """Inject a cut (close without message_stop) or an in-stream `error` event."""
    if fault.kind == "cut":
        # Flush what was sent, then close without message_stop or the final chunk.
        if request.transport is not None:
            request.transport.close()
        return
    await response.write(
        encode(
            "error",
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            },
        )
    )


async def count_tokens(request: web.Request) -> web.Response:
    """POST /v1/messages/count_tokens; only a forced x-sim-fault can fail it."""
    version = check_headers(request)
    state = request.app[STATE]
    forced = request.headers.get("x-sim-fault")
    raw = await request.read()
    state.journal.record(request.path, request[REQUEST_ID], raw)
    req = parse_request(raw, version, count_only=True, betas=betas(request))
    if forced:
        fault = parse_forced(forced)
        state.stats.faults[fault.kind] += 1
        if fault.is_status:
            return error_fault_response(
                fault,
                request[REQUEST_ID],
                header_float(request, "x-sim-retry-after"),
                request.headers.get("x-sim-should-retry"),
            )
        if fault.kind != "slow":
            return _drop_connection(request)
    # Same units and overhead as usage: the total equals input + cache read + cache write.
    return json_response({"input_tokens": total_input_tokens(units(req))}, request)


async def list_models(request: web.Request) -> web.Response:
    check_headers(request)
    data = [spec.to_api() for spec in active_models()]
    return json_response(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        },
        request,
    )


async def get_model(request: web.Request) -> web.Response:
    check_headers(request)
    name = request.match_info["model_id"]
    spec = lookup_model(name)
    if spec is None or spec.retired:
        raise NotFound(f"model: {name}")
    return json_response(spec.to_api(), request)


async def stats(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].stats.to_json(), request)


async def reset_stats(request: web.Request) -> web.Response:
    request.app[STATE].stats.reset()
    return json_response(request.app[STATE].stats.to_json(), request)


async def journal(request: web.Request) -> web.Response:
    """GET /sim/journal: the recorded request bodies, oldest first."""
    return json_response(request.app[STATE].journal.to_json(), request)


async def clear_journal(request: web.Request) -> web.Response:
    """DELETE /sim/journal: forget every recorded body."""
    request.app[STATE].journal.clear()
    return json_response(request.app[STATE].journal.to_json(), request)
