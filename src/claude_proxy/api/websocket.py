"""``GET /v1/ws``: Messages requests over one WebSocket, several at once.

Client frames (JSON text):
- ``{"type": "auth", "api_key": "…"}``: first frame, when the key is not in the
  ``x-api-key``/``Authorization`` headers or the ``api_key`` query parameter
  (browsers cannot set headers on a WebSocket);
- ``{"id": <string or number>, "type": "request", "body": <Messages request>}``,
  with optional ``"headers": {"anthropic-beta": …, …}`` sent upstream as HTTP
  headers would be (not the credentials: the socket's stand); the request is always
  streamed;
- ``{"id": …, "type": "cancel"}``: stop that request (its upstream call too).

Server frames: ``{"id": …, "event": <the event an SSE client would get>}`` for every
event of the request, errors included as ``error`` events; ``{"id": …, "type":
"cancelled"}`` after a cancel. Close codes: 4401 authentication failed, 4403 model
or access refused for the socket, 1003 binary frame, 1007 a frame that is not a
JSON object with an ``id``, 1009 a frame over ``max_body_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from multidict import CIMultiDict, CIMultiDictProxy

from claude_proxy.api.ingress import call_from_request
from claude_proxy.api.sinks import WsSink, control_frame
from claude_proxy.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    RateLimited,
    error_body,
)
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.pipeline.chain import outcome_of
from claude_proxy.pipeline.stage import Outcome
from claude_proxy.services import SERVICES, Services
from claude_proxy.upstream.forwarder import UpstreamReply

__all__ = ["websocket_endpoint"]

AUTH_FAILED = 4401
AUTH_TIMEOUT = 10.0  # seconds to send the auth frame
_DEFAULT_VERSION = "2023-06-01"
_PASSED_HEADERS = ("anthropic-version", "anthropic-beta")
# A frame may not replace the socket's credentials or the body's framing.
_FIXED_HEADERS = frozenset({"x-api-key", "authorization", "content-type", "content-length"})


async def websocket_endpoint(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    # The upgrade's own chain (the loopback check, when on) refuses with a plain HTTP
    # error before the upgrade. The upgrade is not an API call: each request on the
    # socket goes through the messages chain and is recorded there.
    upgrade = call_from_request(request, Route.WEBSOCKET, services.settings.max_body_bytes)
    await services.pipeline.start(upgrade).request()
    ws = web.WebSocketResponse(
        heartbeat=services.settings.streams.ws_heartbeat,
        max_msg_size=services.settings.max_body_bytes,
        compress=False,  # events are small; deflate would cost more CPU than it saves
    )
    await ws.prepare(request)
    socket = _Socket(services, request, ws)
    try:
        await socket.serve()
    finally:
        await socket.close()
    return ws


class _Socket:
    """One client connection and the requests running on it."""

    def __init__(self, services: Services, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.services = services
        self.ws = ws
        self.request = request
        self.headers: CIMultiDict[str] = CIMultiDict({"content-type": "application/json"})
        for name in _PASSED_HEADERS:
            if name in request.headers:
                self.headers[name] = request.headers[name]
        self.headers.setdefault("anthropic-version", _DEFAULT_VERSION)
        self.running: dict[bytes, asyncio.Task[None]] = {}

    async def serve(self) -> None:
        if not await self._authenticate():
            return
        async for message in self.ws:
            if message.type == WSMsgType.BINARY:
                await self.ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"text frames only")
                return
            if message.type != WSMsgType.TEXT:
                return  # closing, closed or a protocol error
            frame = _parse(message.data)
            if frame is not None and frame.get("type") == "auth":
                # Already authenticated, or an open gateway that did not ask: a client
                # may still send the frame the README shows, without an id.
                self._late_auth(frame)
                continue
            if frame is None or not _has_id(frame):
                await self.ws.close(
                    code=WSCloseCode.INVALID_TEXT,
                    message=b'frames must be JSON objects with an "id"',
                )
                return
            await self._on_frame(frame)

    async def close(self) -> None:
        """The socket is gone: its requests stop, and with them their upstream calls."""
        for task in self.running.values():
            task.cancel()
        if self.running:
            await asyncio.wait(self.running.values())

    async def _authenticate(self) -> bool:
        tenants = self.services.tenants
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value)
            for name, value in self.request.headers.items()
            if name.lower() in ("x-api-key", "authorization")
        )
        query_key = self.request.query.get("api_key")
        if query_key and not headers:
            headers["x-api-key"] = query_key
        if not headers and not tenants.is_open:
            key = await self._auth_frame()
            if key is None:
                return False
            headers["x-api-key"] = key
        try:
            tenants.authenticate(headers)  # each request is authenticated again, by its chain
        except AuthenticationFailed as exc:
            await self.ws.close(code=AUTH_FAILED, message=f"authentication_error: {exc}".encode())
            return False
        # Forwarded upstream only where no deployment key replaces it (transparent mode).
        self.headers.extend(headers)
        return True

    async def _auth_frame(self) -> str | None:
        try:
            message = await self.ws.receive(timeout=AUTH_TIMEOUT)
        except TimeoutError:
            message = None
        frame = _parse(message.data) if message and message.type == WSMsgType.TEXT else None
        key = frame.get("api_key") if frame is not None and frame.get("type") == "auth" else None
        if not isinstance(key, str) or not key:
            await self.ws.close(
                code=AUTH_FAILED,
                message=b'authentication_error: send {"type": "auth", "api_key": ...} first',
            )
            return None
        return key

    def _late_auth(self, frame: dict[str, Any]) -> None:
        """An auth frame on a socket that is already open: with no tenants and no key
        yet, the key is the client's own, forwarded where no deployment key replaces it."""
        key = frame.get("api_key")
        has_key = "x-api-key" in self.headers or "authorization" in self.headers
        if self.services.tenants.is_open and not has_key and isinstance(key, str) and key:
            self.headers["x-api-key"] = key

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        client_id = orjson.dumps(frame["id"])
        kind = frame.get("type")
        if kind == "cancel":
            task = self.running.get(client_id)
            if task is not None:
                task.cancel()
            return
        error: GatewayError | None = None
        body = frame.get("body")
        if kind != "request":
            error = InvalidRequest('type: must be "request", "cancel" or "auth"')
        elif not isinstance(body, dict):
            error = InvalidRequest("body: must be a Messages request object")
        elif client_id in self.running:
            error = InvalidRequest("id: a request with this id is still running")
        elif len(self.running) >= self.services.settings.streams.ws_max_concurrent:
            error = RateLimited("Too many concurrent requests on this WebSocket.")
        if error is not None:
            await self._send_error(client_id, error.error_type, error.message)
            return
        assert isinstance(body, dict)
        headers = frame.get("headers")
        task = asyncio.create_task(self._run(client_id, body, headers))
        self.running[client_id] = task
        task.add_done_callback(lambda _: self.running.pop(client_id, None))

    async def _run(self, client_id: bytes, body: dict[str, Any], extra: object) -> None:
        services = self.services
        call = Call.create(
            services.request_ids(),
            Route.MESSAGES,
            path="/v1/messages",
            headers=self._headers(extra),
            peer=self.request.remote,
            body={**body, "stream": True},
        )
        run = services.pipeline.start(call)
        outcome = Outcome(200)
        try:
            await run.request()
            opened = await services.calls.open_stream(call)
            if isinstance(opened, UpstreamReply):
                outcome = Outcome(opened.status)
                await self._send_reply_error(client_id, opened)
                return
            generation = call.generation = services.streams.generation(
                opened, WsSink(self.ws, client_id), filters=run.event_filters()
            )
            await services.streams.serve(generation)
        except GatewayError as exc:
            outcome = outcome_of(exc)
            await self._send_error(client_id, exc.error_type, exc.message)
        except asyncio.CancelledError as exc:
            answered = call.generation is not None and call.generation.answered
            outcome = outcome_of(exc, answered=answered)
            if not answered and not self.ws.closed:
                with contextlib.suppress(ConnectionResetError):
                    await self.ws.send_frame(control_frame(client_id, "cancelled"), WSMsgType.TEXT)
            raise
        finally:
            run.finish(outcome)

    def _headers(self, extra: object) -> CIMultiDictProxy[str]:
        headers = self.headers
        if isinstance(extra, dict) and extra:
            headers = headers.copy()
            for name, value in extra.items():
                wanted = isinstance(name, str) and name.lower() not in _FIXED_HEADERS
                if wanted and isinstance(value, str):
                    headers[name] = value
        return CIMultiDictProxy(headers)

    async def _send_error(self, client_id: bytes, error_type: str, message: str) -> None:
        event = b'{"id":' + client_id + b',"event":' + error_body(error_type, message) + b"}"
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_frame(event, WSMsgType.TEXT)

    async def _send_reply_error(self, client_id: bytes, reply: UpstreamReply) -> None:
        await self._send_error(client_id, *reply.error())


def _parse(data: str) -> dict[str, Any] | None:
    """A frame as a JSON object (None: not one); whether it needs an id is the caller's."""
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return frame if isinstance(frame, dict) else None


def _has_id(frame: dict[str, Any]) -> bool:
    return isinstance(frame.get("id"), str | int) and not isinstance(frame["id"], bool)
