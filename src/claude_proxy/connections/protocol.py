"""aiohttp's HTTP/1 connection with the gateway's client limits, and the runner that uses it.

aiohttp has no deadline for a request head (its keep-alive timer, which also runs from
the connection's start, is as long as keep-alive must be), none for a body, and answers
what its parser rejects in plain text with a logged traceback. ``ClientConnection`` adds
the first two and answers the third in the API's error shape with one rate-limited
warning. It leans on aiohttp internals, pinned by aiohttp<4 and by tests/connections:
``RequestHandler._messages``, ``_ErrInfo`` and ``_lingering_time``, ``web.Server._kwargs``
and ``AppRunner._make_server``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from claude_proxy.connections.guard import ClientGuard
from claude_proxy.connections.table import address_key
from claude_proxy.errors import GatewayError, InvalidRequest, RequestTimeout
from claude_proxy.responses import error_response

__all__ = ["ClientConnection", "ClientRunner", "parse_error_answer"]


class ClientConnection(RequestHandler):
    """One client connection: admitted by the guard's table, timed until each request
    head and body is whole, and its parser errors answered as API errors."""

    __slots__ = ("_body", "_body_since", "_body_timer", "_guard", "_head_timer")

    def __init__(self, manager: web.Server, guard: ClientGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._head_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None
        self._body_since = 0.0
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        address = address_key(transport.get_extra_info("peername"))
        admission = guard.table.admit(self, address)
        if admission.refused is not None:
            # Never handed to aiohttp: the refusal takes the transport over.
            guard.refuse(transport, admission.refused, address)
            return
        if admission.victims:
            for victim in admission.victims:
                victim.evict()
            guard.made_room(address, len(admission.victims))
        super().connection_made(transport)
        # Bytes that never make a whole head do not move this deadline, so a client
        # trickling a head is closed as surely as one that sends nothing.
        self._head_timer = self._loop.call_later(guard.settings.header_timeout, self._head_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.table.release(self)
        self._stop_head_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def evict(self) -> None:
        """Close to make room for a newcomer; this connection has no request in progress."""
        self._stop_head_timer()
        self.force_close()

    def request_started(self, payload: StreamReader) -> None:
        """A whole request head arrived (the server's request factory calls this)."""
        self._stop_head_timer()
        self._guard.table.busy(self)
        if payload.is_eof():
            return
        self._body = payload
        self._body_since = self._loop.time()
        self._body_timer = self._loop.call_later(
            self._guard.settings.body_timeout, self._check_body
        )
        payload.on_eof(self._body_complete)

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            # What is left of an unread body is aiohttp's to drain (its lingering_time).
            self._stop_body_timer()
            self._guard.table.waiting(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._body is None or not self._messages:
            return
        # aiohttp queues a parser error in a body behind the request it belongs to,
        # whose handler would wait for the rest of that body until the body timeout.
        error = self._messages[-1][0]
        if isinstance(error, _ErrInfo) and isinstance(error.exc, HttpProcessingError):
            self._guard.stats.bad_requests += 1
            _, _, reason = parse_error_answer(error.exc, self)
            self._fail_body(InvalidRequest(reason))

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response has begun; no error answer can follow")
        request_id = self._guard.request_ids()
        if isinstance(exc, HttpProcessingError):
            status, error_type, text = parse_error_answer(exc, self)
            self._guard.bad_request(request.remote, status, text, request_id)
        else:
            # Not the client's doing: an exception escaped the application's own error
            # handling, which deserves its traceback.
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            error_type, text = (
                ("timeout_error", "The gateway timed out.")
                if status == 504
                else ("api_error", "Internal gateway error.")
            )
        response = error_response(status, error_type, text, request_id)
        response.force_close()
        return response

    def _head_late(self) -> None:
        self._head_timer = None
        self._guard.stats.header_timeouts += 1
        self.force_close()

    def _check_body(self) -> None:
        self._body_timer = None
        body = self._body
        if body is None or body.is_eof():
            return
        settings = self._guard.settings
        allowed = settings.body_timeout
        if settings.body_min_rate:
            allowed += body.total_bytes / settings.body_min_rate
        now = self._loop.time()
        if now < self._body_since + allowed - 0.001:
            # Bytes came since the timer was set: the deadline moved on.
            self._body_timer = self._loop.call_at(self._body_since + allowed, self._check_body)
            return
        self._guard.stats.body_timeouts += 1
        elapsed = now - self._body_since
        self._fail_body(
            RequestTimeout(
                f"The request body did not arrive in time: {body.total_bytes} bytes "
                f"in {elapsed:.1f} s."
            )
        )

    def _fail_body(self, error: GatewayError) -> None:
        body = self._body
        self._stop_body_timer()
        if body is None:
            return
        # The rest of the body will never come: no lingering to read it after the
        # answer, and the connection closes once the answer is sent.
        self._lingering_time = 0.0
        self.close()
        # Whoever reads the body gets the error, answered as any GatewayError is.
        body.set_exception(error)

    def _body_complete(self) -> None:
        if self._body is not None and self._body.is_eof():
            self._stop_body_timer()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _stop_body_timer(self) -> None:
        self._body = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None


def parse_error_answer(exc: HttpProcessingError, handler: RequestHandler) -> tuple[int, str, str]:
    """Status, error type and message for a request aiohttp's parser rejected."""
    message = str(exc.message)
    if isinstance(exc, LineTooLong) or message.startswith("Too many headers"):
        # 431, not the API's 413: that one says the body is too large, and a client
        # would shrink the wrong thing.
        return (
            431,
            "request_too_large",
            f"Request head too large: at most {handler.max_headers} header lines of up "
            f"to {handler.max_field_size} bytes, and a request line of {handler.max_line_size}.",
        )
    # The first line names the fault; the rest quotes the client's bytes back.
    first = message.split("\n", 1)[0].rstrip(" :")[:200]
    reason = "".join(ch if ch.isprintable() else "?" for ch in first)
    return 400, "invalid_request_error", f"Malformed HTTP request: {reason}."


class _GuardedServer(web.Server):
    """aiohttp's server for an app, making ``ClientConnection``s and telling each when
    a request starts."""

    def __init__(self, base: web.Server, guard: ClientGuard) -> None:
        make_request = base.request_factory

        def request_factory(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> BaseRequest:
            request = make_request(message, payload, protocol, writer, task)
            if isinstance(protocol, ClientConnection):
                protocol.request_started(payload)
            return request

        # The same handler and options as the server aiohttp built for the app.
        super().__init__(
            base.request_handler,
            request_factory=request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return ClientConnection(self, self.guard, loop=self._loop, **self._kwargs)


class ClientRunner(web.AppRunner):
    """``web.AppRunner`` whose connections apply ``guard``'s limits and timeouts."""

    __slots__ = ("guard",)

    def __init__(self, app: web.Application, guard: ClientGuard, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=guard.settings.keepalive_timeout, **kwargs)
        self.guard = guard

    async def _make_server(self) -> web.Server:
        return _GuardedServer(await super()._make_server(), self.guard)
