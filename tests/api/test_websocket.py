"""GET /v1/ws: many requests on one socket, the same events as SSE, cancel, auth, bad frames."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import aiohttp
import orjson
import pytest

from claude_proxy.server import RunningServer
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.sse import parse_events, without_ids

TENANTS = [{"name": "team-a", "keys": ["key-a"]}]


def request_frame(client_id: object, body: dict[str, Any], **extra: Any) -> str:
    return orjson.dumps({"id": client_id, "type": "request", "body": body, **extra}).decode()


async def sse_events(http: aiohttp.ClientSession, gateway: RunningServer, body: dict) -> list:
    async with http.post(
        f"{gateway.url}/v1/messages", json={**body, "stream": True}, headers=API_HEADERS
    ) as r:
        return [data for _, data in parse_events(await r.read())]


async def collect(ws: aiohttp.ClientWebSocketResponse, ids: set[object]) -> dict[object, list]:
    """Frames by id until each of ``ids`` has ended (message_stop, error or cancelled)."""
    frames: dict[object, list] = defaultdict(list)
    open_ids = set(ids)
    async with asyncio.timeout(20):
        while open_ids:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frame = orjson.loads(message.data)
            frames[frame["id"]].append(frame)
            kind = frame.get("type") or frame["event"]["type"]
            if kind in ("message_stop", "error", "cancelled"):
                open_ids.discard(frame["id"])
    return frames


async def test_twenty_concurrent_requests_with_a_cancel(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(speed=0.05)
    gateway = await start_gateway(sim.url)
    bodies = {i: message_body(f"question {i}", max_tokens=300) for i in range(20)}
    long_body = message_body("a long one", max_tokens=30000, model="claude-sonnet-4-6")
    expected = {i: await sse_events(http, gateway, body) for i, body in bodies.items()}
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=API_HEADERS) as ws:
        long_headers = {"x-sim-answer-tokens": "20000"}  # frame headers go upstream
        await ws.send_str(request_frame("long", long_body, headers=long_headers))
        for i, body in bodies.items():
            await ws.send_str(request_frame(i, body))
        await ws.send_str(orjson.dumps({"id": "long", "type": "cancel"}).decode())
        frames = await collect(ws, {*bodies, "long"})
    for i in bodies:
        events = [frame["event"] for frame in frames[i]]
        assert without_ids(events) == without_ids(expected[i]), i
    assert frames["long"][-1] == {"id": "long", "type": "cancelled"}


async def test_a_cancel_stops_the_upstream_call(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(speed=1.0)  # 20,000 tokens would take ~20 s
    gateway = await start_gateway(sim.url)
    body = message_body(max_tokens=32000, model="claude-sonnet-4-6")
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=API_HEADERS) as ws:
        await ws.send_str(request_frame("x", body, headers={"x-sim-answer-tokens": "20000"}))
        first = orjson.loads((await ws.receive()).data)
        assert first["event"]["type"] == "message_start"
        await ws.send_str(orjson.dumps({"id": "x", "type": "cancel"}).decode())
        frames = await collect(ws, {"x"})
        assert frames["x"][-1]["type"] == "cancelled"
    async with asyncio.timeout(5):
        while True:
            async with http.get(f"{sim.url}/sim/stats") as r:
                if (await r.json())["in_flight"] == 0:
                    break
            await asyncio.sleep(0.02)


async def test_errors_arrive_as_error_events_for_their_id(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=API_HEADERS) as ws:
        await ws.send_str(request_frame("bad-model", message_body(model="claude-nonexistent-9")))
        await ws.send_str(request_frame("no-body", "nope"))  # type: ignore[arg-type]
        await ws.send_str(orjson.dumps({"id": 7, "type": "dance"}).decode())
        await ws.send_str(request_frame("ok", message_body()))
        frames = await collect(ws, {"bad-model", "no-body", 7, "ok"})
    assert frames["bad-model"][-1]["event"]["error"]["type"] == "not_found_error"
    assert frames["no-body"][-1]["event"]["error"]["type"] == "invalid_request_error"
    assert frames[7][-1]["event"]["error"]["type"] == "invalid_request_error"
    assert frames["ok"][-1]["event"]["type"] == "message_stop"


@pytest.mark.parametrize(
    ("frame", "code"),
    [("not json", 1007), ('{"type": "request"}', 1007), ("[1, 2]", 1007)],
)
async def test_bad_frames_close_the_socket_with_a_clear_code(
    gateway: RunningServer, http: aiohttp.ClientSession, frame: str, code: int
) -> None:
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=API_HEADERS) as ws:
        await ws.send_str(frame)
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == code


async def test_binary_frames_are_refused(
    gateway: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=API_HEADERS) as ws:
        await ws.send_bytes(b"\x00\x01")
        await ws.receive()
        assert ws.close_code == 1003


@pytest.mark.parametrize("how", ["header", "query", "first frame"])
async def test_tenant_keys_authenticate_a_socket(
    start_gateway: StartGateway, sim: RunningServer, http: aiohttp.ClientSession, how: str
) -> None:
    gateway = await start_gateway(sim.url, tenants=TENANTS)
    url, headers = f"{gateway.url}/v1/ws", {"anthropic-version": "2023-06-01"}
    if how == "header":
        headers["x-api-key"] = "key-a"
    elif how == "query":
        url += "?api_key=key-a"
    async with http.ws_connect(url, headers=headers) as ws:
        if how == "first frame":
            await ws.send_str('{"type": "auth", "api_key": "key-a"}')
        await ws.send_str(request_frame(1, message_body()))
        frames = await collect(ws, {1})
    assert frames[1][-1]["event"]["type"] == "message_stop"


@pytest.mark.parametrize("how", ["wrong key", "no auth frame"])
async def test_failed_authentication_closes_with_4401(
    start_gateway: StartGateway, sim: RunningServer, http: aiohttp.ClientSession, how: str
) -> None:
    gateway = await start_gateway(sim.url, tenants=TENANTS)
    headers = {"x-api-key": "wrong"} if how == "wrong key" else {}
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=headers) as ws:
        if how == "no auth frame":
            await ws.send_str(request_frame(1, message_body()))
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4401
        assert "authentication_error" in (message.extra or "")


async def test_a_forbidden_model_is_an_error_event(
    start_gateway: StartGateway, sim: RunningServer, http: aiohttp.ClientSession
) -> None:
    tenants = [{"name": "team-a", "keys": ["key-a"], "models": ["claude-haiku-*"]}]
    gateway = await start_gateway(sim.url, tenants=tenants)
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers={"x-api-key": "key-a"}) as ws:
        await ws.send_str(request_frame(1, message_body(model="claude-opus-4-1")))
        frames = await collect(ws, {1})
    assert frames[1][-1]["event"]["error"]["type"] == "permission_error"


async def test_the_auth_frame_works_on_an_open_gateway_and_carries_the_key(
    start_gateway: StartGateway, start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    # No tenants and no upstream key (transparent mode): the frame's key is the one
    # the upstream checks, so a request only succeeds if it was taken from the frame.
    sim = await start_sim(api_key="sk-ant-the-clients-own")
    gateway = await start_gateway(sim.url, api_key=None)
    async with http.ws_connect(f"{gateway.url}/v1/ws") as ws:
        await ws.send_str('{"type": "auth", "api_key": "sk-ant-the-clients-own"}')
        await ws.send_str(request_frame(1, message_body()))
        frames = await collect(ws, {1})
    assert frames[1][-1]["event"]["type"] == "message_stop"
