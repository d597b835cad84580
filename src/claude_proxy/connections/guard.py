"""One server's client policy in force: its table, its refusals, and logs a flood cannot swell."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Protocol, cast

from claude_proxy.config.settings import ClientSettings
from claude_proxy.connections.table import (
    ConnectionStats,
    ConnectionTable,
    Limits,
    descriptor_room,
    resolve_limits,
)
from claude_proxy.errors import RequestIds, error_body

__all__ = ["ClientGuard", "Evictable", "RateLimitedLog", "describe_limits"]

_log = logging.getLogger("claude_proxy.connections")

# A refused connection is read (and what it sends dropped) this long after its answer:
# closing a socket with unread data resets it, and the reset can destroy the answer in
# the client's buffer before the client reads it. Past MAX_LINGERING at once (a flood
# of refusals), they close at once instead, so refusals cannot use up descriptors.
REFUSAL_LINGER = 1.0
MAX_LINGERING = 128
RETRY_AFTER_SECONDS = 1


class Evictable(Protocol):
    def evict(self) -> None: ...


class RateLimitedLog:
    """Warnings a client can cause: up to ``burst`` at once, then ``rate`` a second; the
    next line written says how many were left out."""

    def __init__(
        self,
        logger: logging.Logger,
        rate: float = 1.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self.suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            self.suppressed += 1
            return
        self._tokens -= 1.0
        if self.suppressed:
            message += " (and %d more not logged)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self._logger.warning(message, *args)


class ClientGuard:
    """The client policy of one server, built from ``ClientSettings`` when it starts."""

    def __init__(self, settings: ClientSettings, limits: Limits | None = None) -> None:
        self.settings = settings
        self.limits = limits if limits is not None else resolve_limits(settings)
        self.table: ConnectionTable[Evictable] = ConnectionTable(self.limits)
        self.request_ids = RequestIds()
        self.lingering = 0
        self._at_limit = RateLimitedLog(_log)
        self._bad_requests = RateLimitedLog(_log)

    @property
    def stats(self) -> ConnectionStats:
        return self.table.stats

    def describe(self) -> str:
        return describe_limits(self.settings, self.limits)

    def descriptor_warning(self) -> str | None:
        """What to say when max_connections is more than this process's open-file limit
        leaves room for: past it, accepting fails and everyone waits, probes included."""
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        room = descriptor_room(nofile)
        if self.limits.max_connections <= room:
            return None
        return (
            f"clients.max_connections {self.limits.max_connections} is more than the "
            f"open-file limit ({nofile}) leaves room for ({room}); raise ulimit -n"
        )

    def made_room(self, address: str | None, closed: int) -> None:
        self._at_limit.warning(
            "at a connection limit: closed %d connection(s) waiting longest for a request "
            "to admit one from %s",
            closed,
            address,
        )

    def refuse(self, transport: asyncio.BaseTransport, why: str, address: str | None) -> None:
        """Answer 503 overloaded_error on a connection over a limit, then close it."""
        if why == "address":
            limit = self.limits.max_per_address
            message = f"Too many connections from your address (limit {limit}); retry shortly."
        else:
            limit = self.limits.max_connections
            message = f"The gateway is at its connection limit ({limit}); retry shortly."
        request_id = self.request_ids()
        self._at_limit.warning("refused a connection from %s: %s", address, message)
        answer = raw_error(503, "Service Unavailable", "overloaded_error", message, request_id)
        refused = _Refused(self, answer)
        transport.set_protocol(refused)
        refused.connection_made(transport)

    def bad_request(self, peer: str | None, status: int, reason: str, request_id: str) -> None:
        self.stats.bad_requests += 1
        self._bad_requests.warning(
            "bad request from %s, answered %d: %s (request-id %s)", peer, status, reason, request_id
        )


def describe_limits(settings: ClientSettings, limits: Limits) -> str:
    """The limits in force, for the start-up log."""
    per_address = limits.max_per_address or "no limit"
    rate = f" + 1 s per {settings.body_min_rate} bytes" if settings.body_min_rate else ""
    return (
        f"at most {limits.max_connections} ({per_address} per address); timeouts: "
        f"head {settings.header_timeout:g} s, body {settings.body_timeout:g} s{rate}, "
        f"keep-alive {settings.keepalive_timeout:g} s"
    )


def raw_error(status: int, phrase: str, error_type: str, message: str, request_id: str) -> bytes:
    """A whole HTTP/1.1 error answer, for connections no aiohttp handler will serve."""
    body = error_body(error_type, message, request_id)
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        f"request-id: {request_id}\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Refused(asyncio.Protocol):
    """A refused connection: its answer, a short read of what the client still sends, close."""

    def __init__(self, guard: ClientGuard, answer: bytes) -> None:
        self._guard = guard
        self._answer = answer
        self._counted = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        stream.write(self._answer)
        guard = self._guard
        if guard.lingering >= MAX_LINGERING or not stream.can_write_eof():
            stream.close()
            return
        guard.lingering += 1
        self._counted = True
        stream.write_eof()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(REFUSAL_LINGER, stream.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._counted:
            self._guard.lingering -= 1
            self._counted = False
