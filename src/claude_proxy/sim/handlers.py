"""HTTP handlers of the simulated API: messages (JSON and SSE), count_tokens, models, stats."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from claude_proxy.errors import AuthenticationFailed, InvalidRequest, NotFound, new_id
from claude_proxy.sim.faults import Fault, draw_fault, error_fault_response, parse_forced
from claude_proxy.sim.generation import Reply, generate
from claude_proxy.sim.latency import Pacer, per_output_token, time_to_first_token, total_time
from claude_proxy.sim.models import active_models, lookup_model
from claude_proxy.sim.sse import encode, reply_events
from claude_proxy.sim.state import STATE, SimState
from claude_proxy.sim.tokens import prompt_units, total_input_tokens
from claude_proxy.sim.validation import MessagesRequest, parse_request

__all__ = [
    "REQUEST_ID",
    "count_tokens",
    "get_model",
    "list_models",
    "messages",
    "reset_stats",
    "stats",
]

REQUEST_ID = web.RequestKey("sim_request_id", str)
_MAX_HEADER_INT = 1_000_000  # bounds the memory one x-sim-answer-tokens request can take


def _json(payload: Any, request: web.Request, status: int = 200) -> web.Response:
    response = web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json"
    )
    response.headers["request-id"] = request[REQUEST_ID]
    return response


def _check_headers(request: web.Request) -> str:
    """Authenticate and return the anthropic-version (any value is accepted)."""
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
    if not key:
        raise AuthenticationFailed("x-api-key header is required")
    expected = request.app[STATE].settings.api_key
    if expected is not None and key != expected:
        raise AuthenticationFailed("invalid x-api-key")
    version = request.headers.get("anthropic-version")
    if not version:
        raise InvalidRequest("anthropic-version: header is required")
    return version


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


def _header_float(request: web.Request, name: str) -> float | None:
    raw = request.headers.get(name)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        raise InvalidRequest(f"{name}: must be a number") from None


def _units(req: MessagesRequest) -> list[Any]:
    return prompt_units(req.tools, req.system, [(m.role, m.blocks) for m in req.messages])


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
    version = _check_headers(request)
    req = parse_request(await request.read(), version)
    answer_tokens = _header_int(request, "x-sim-answer-tokens")
    fault = _choose_fault(request, state)
    if fault is not None:
        state.stats.faults[fault.kind] += 1
        if fault.kind == "slow":
            # An explicit stall, deliberately not scaled by `speed`.
            await asyncio.sleep(fault.after if fault.after >= 0 else settings.slow_first_byte)
            fault = None
        elif fault.is_status:
            retry_after = _header_float(request, "x-sim-retry-after")
            if retry_after is None and fault.kind == "429":
                retry_after = settings.retry_after
            return error_fault_response(
                fault, request[REQUEST_ID], retry_after, request.headers.get("x-sim-should-retry")
            )
        elif fault.kind == "reset" or not req.stream:
            return _drop_connection(request)
    usage_split = state.cache.account(
        req.model.id, _units(req), req.cache_control, req.model.min_cacheable_tokens
    )
    reply = generate(req, settings, answer_tokens)
    state.stats.output_tokens += reply.output_tokens
    usage: dict[str, Any] = {**usage_split.to_api(), "service_tier": "standard"}
    message: dict[str, Any] = {
        "id": new_id("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": req.model_name,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    latency, speed = settings.latency, settings.speed
    ttft = time_to_first_token(latency, speed, usage_split.input_tokens, usage_split.cache_read)
    if req.stream:
        return await _stream(
            request, message, reply, usage, ttft, per_output_token(latency, speed), fault
        )
    delay = total_time(
        latency, speed, usage_split.input_tokens, usage_split.cache_read, reply.output_tokens
    )
    if delay > 0:
        await asyncio.sleep(delay)
    message.update(
        content=[b.to_api() for b in reply.blocks],
        stop_reason=reply.stop_reason,
        stop_sequence=reply.stop_sequence,
        usage={**usage, "output_tokens": reply.output_tokens},
    )
    return _json(message, request)


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
    version = _check_headers(request)
    state = request.app[STATE]
    forced = request.headers.get("x-sim-fault")
    req = parse_request(await request.read(), version, count_only=True)
    if forced:
        fault = parse_forced(forced)
        state.stats.faults[fault.kind] += 1
        if fault.is_status:
            return error_fault_response(
                fault,
                request[REQUEST_ID],
                _header_float(request, "x-sim-retry-after"),
                request.headers.get("x-sim-should-retry"),
            )
        if fault.kind != "slow":
            return _drop_connection(request)
    # Same units and overhead as usage: the total equals input + cache read + cache write.
    return _json({"input_tokens": total_input_tokens(_units(req))}, request)


async def list_models(request: web.Request) -> web.Response:
    _check_headers(request)
    data = [spec.to_api() for spec in active_models()]
    return _json(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        },
        request,
    )


async def get_model(request: web.Request) -> web.Response:
    _check_headers(request)
    name = request.match_info["model_id"]
    spec = lookup_model(name)
    if spec is None or spec.retired:
        raise NotFound(f"model: {name}")
    return _json(spec.to_api(), request)


async def stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE].stats.to_json(), request)


async def reset_stats(request: web.Request) -> web.Response:
    request.app[STATE].stats.reset()
    return _json(request.app[STATE].stats.to_json(), request)
