"""Send a request upstream until it succeeds, or fail it honestly.

One client request may take several upstream attempts: the router picks a
deployment, the retry policy says whether and when to try again, the retry
budget says whether the gateway can afford it, and the deadline bounds it all.
Streams use ``open_stream`` for the attempt that opens them; the stream relay
asks ``may_retry`` before continuing a broken one.

What is sent is an ``UpstreamRequest`` (method, path, the client's headers); the body
is passed per attempt, since a heal or a continuation sends another one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import orjson
from multidict import CIMultiDict, MultiMapping

from claude_proxy.config import Settings
from claude_proxy.errors import (
    GatewayError,
    Overloaded,
    RateLimited,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from claude_proxy.observability import Metrics
from claude_proxy.upstream.budget import RetryBudget
from claude_proxy.upstream.client import UpstreamResponse
from claude_proxy.upstream.headers import downstream_headers, upstream_headers
from claude_proxy.upstream.retry import RetryPolicy, retry_after_seconds
from claude_proxy.upstream.router import Deployment, Router

__all__ = [
    "AttemptLog",
    "ClientBody",
    "Forwarder",
    "OpenStream",
    "UpstreamReply",
    "UpstreamRequest",
]

_log = logging.getLogger("claude_proxy.upstream")
_EVENT_STREAM = "text/event-stream"
CLIENT_RETRY_HEADER = "x-stainless-retry-count"


@runtime_checkable
class ClientBody(Protocol):
    """A request body streamed from the client as it is sent upstream; ``failure`` is set
    when the client, not the upstream, made sending it fail."""

    failure: GatewayError | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


@dataclass(slots=True)  # not frozen: built per request, and frozen dataclasses init slowly
class UpstreamRequest:
    """What goes upstream for one client request, apart from the body."""

    request_id: str  # for the logs
    method: str
    path: str  # with the query string
    headers: MultiMapping[str]  # the client's: upstream_headers() picks what crosses


@dataclass(slots=True)
class UpstreamReply:
    """A complete (non-stream) upstream answer, success or error."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    def error(self) -> tuple[str, str]:
        """An error answer's ``error.type`` and message, from its Anthropic-shaped body
        (a body of another shape says only the status)."""
        try:
            error = orjson.loads(self.body)["error"]
            return str(error["type"]), str(error["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return "api_error", f"The upstream answered {self.status}."


@dataclass(slots=True)
class OpenStream:
    """A response whose body has not been read yet: a 200 event stream, or a relayed
    route's answer below 400."""

    deployment: Deployment
    response: UpstreamResponse
    headers: CIMultiDict[str]


@dataclass(slots=True)
class AttemptLog:
    """The attempts made for one client request."""

    request: UpstreamRequest
    allowed: int
    deadline_at: float
    timeout: float | None  # seconds one attempt may wait for its response (None: no limit)
    # False: a failure is retried only where the API says nothing was processed (a POST
    # that creates a batch or a file must not run twice).
    idempotent: bool = True
    count: int = 0
    retries: int = 0
    heals: int = 0
    continuations: int = 0
    # The gateway, not the upstream, chose where the answer ends: a stream broke with
    # what the client had already estimated at its max_tokens, and was closed there.
    ended_by_gateway: bool = False
    last_failed: str | None = None
    # The API said it is overloaded or rate limited (feeds the adaptive window).
    overloaded: bool = False
    # Seconds spent waiting on the upstream (attempts) and between attempts (backoff):
    # what the gateway's own overhead excludes.
    upstream_seconds: float = 0.0
    backoff_seconds: float = 0.0


@dataclass(slots=True)
class _Failure:
    deployment: Deployment
    error: GatewayError | UpstreamReply
    advised_delay: float | None = None  # retry-after of a 529 and the like
    cooled: bool = False  # a 429 already paused this deployment


class Forwarder:
    def __init__(
        self,
        settings: Settings,
        router: Router,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings.retry
        self._policy = RetryPolicy(settings.retry)
        self.router = router
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.budget = RetryBudget(
            settings.retry.budget,
            settings.retry.budget_window,
            settings.retry.budget_min_per_second,
            clock,
        )
        self.metrics = metrics if metrics is not None else Metrics()

    def start(
        self, request: UpstreamRequest, *, stream: bool = True, max_tokens: int | None = None
    ) -> AttemptLog:
        """Begin the attempts of one client request (see ``attempt_timeout``)."""
        self.budget.record_request()
        # A client that is itself retrying gets fewer attempts from us, so that its
        # retries and ours multiply to a bounded number of upstream calls.
        client_retries = _int_header(request.headers.get(CLIENT_RETRY_HEADER))
        allowed = max(1, self.settings.max_attempts - client_retries)
        deadline = self._clock() + self.settings.deadline
        return AttemptLog(request, allowed, deadline, self.attempt_timeout(stream, max_tokens))

    def start_relayed(self, request: UpstreamRequest, *, replayable: bool) -> AttemptLog:
        """Begin a relayed route's attempts. A GET or HEAD is retried like any call; another
        method only after a failure the API says it did not process; a body that is
        streamed through (not ``replayable``) only once. Sending a streamed body may take
        as long as the client takes to send it, so its attempt has no overall limit (the
        client's body deadlines and the upstream read timeout bound it)."""
        log = self.start(request)
        log.idempotent = request.method in _IDEMPOTENT
        if not replayable:
            log.allowed, log.timeout = 1, None
        return log

    def attempt_timeout(self, stream: bool, max_tokens: int | None) -> float:
        """How long one attempt waits for its response: a stream for its headers, a whole
        answer for as long as its max_tokens may take, within ``attempt_timeout``."""
        s = self.settings
        if stream or not max_tokens or max_tokens < 0:
            return min(s.first_byte_timeout, s.attempt_timeout)
        return min(s.first_byte_timeout + max_tokens / s.min_output_rate, s.attempt_timeout)

    async def send(self, log: AttemptLog, body: bytes | None) -> UpstreamReply:
        """A complete answer: the first success, or the last failure once retrying stops."""
        outcome = await self._until_answered(log, body, stream=False)
        assert isinstance(outcome, UpstreamReply)
        return outcome

    async def open_stream(self, log: AttemptLog, body: bytes | None) -> OpenStream | UpstreamReply:
        """An open event stream, or the final error reply if none could be opened."""
        return await self._until_answered(log, body, stream=True)

    async def open_relayed(
        self, log: AttemptLog, body: bytes | ClientBody | None
    ) -> OpenStream | UpstreamReply:
        """A relayed route's answer: open, its body unread, below 400; an error read whole.

        The body goes up and comes down as encoded, with its own length. A streamed body
        the client fails to send (too large, too slow) raises its own error: it is no
        failure of the upstream, and its breaker does not count it."""
        return await self._until_answered(log, body, stream=True, relay=True)

    def stream_broke(self, deployment: Deployment, reason: str) -> None:
        """An open stream failed: that counts against its deployment."""
        deployment.breaker.on_failure()
        self.metrics.stream_broke(deployment.name, reason)

    async def may_retry(self, log: AttemptLog, failed: Deployment) -> bool:
        """Whether another attempt may start after ``failed`` broke; waits the backoff."""
        return await self._may_retry_after(log, _Failure(failed, GatewayError("stream broke")))

    async def _may_retry_after(self, log: AttemptLog, failure: _Failure) -> bool:
        log.last_failed = failure.deployment.name
        if log.count >= log.allowed:
            return self._stop(log, "attempts exhausted")
        if not log.idempotent and not _not_processed(failure.error):
            return self._stop(log, "not idempotent")
        if failure.cooled:
            delay = 0.0  # choosing the next deployment waits for the cooldown if need be
        elif failure.advised_delay is not None:
            delay = failure.advised_delay
        elif self._router_has_alternative(failure.deployment):
            delay = 0.0  # fail over at once; the breaker guards the failing deployment
        else:
            delay = self._policy.backoff(log.retries, self._rng)
        if self._clock() + delay > log.deadline_at:
            return self._stop(log, "deadline")
        if not self.budget.try_spend():
            return self._stop(log, "retry budget spent")
        log.retries += 1
        self.metrics.retry()
        if delay > 0:
            log.backoff_seconds += delay
            await self._sleep(delay)
        return True

    def _router_has_alternative(self, failed: Deployment) -> bool:
        now = self._clock()
        return any(d is not failed and d.available(now) for d in self.router.deployments)

    def _stop(self, log: AttemptLog, reason: str) -> bool:
        self.metrics.gave_up(reason)
        _log.info(
            "upstream gave up request_id=%s attempts=%d reason=%s",
            log.request.request_id,
            log.count,
            reason,
        )
        return False

    async def _until_answered(
        self,
        log: AttemptLog,
        body: bytes | ClientBody | None,
        *,
        stream: bool,
        relay: bool = False,
    ) -> UpstreamReply | OpenStream:
        while True:
            outcome = await self._attempt(log, body, stream=stream, relay=relay)
            if not isinstance(outcome, _Failure):
                return outcome
            if not await self._may_retry_after(log, outcome):
                return _give_up(outcome)

    async def _attempt(
        self,
        log: AttemptLog,
        body: bytes | ClientBody | None,
        *,
        stream: bool,
        relay: bool = False,
    ) -> UpstreamReply | OpenStream | _Failure:
        deployment = await self._choose(log)
        log.count += 1
        deployment.attempts += 1
        deployment.breaker.on_attempt()
        started = self._clock()
        try:
            result = await self._send(deployment, log.request, body, stream, log.timeout, relay)
        except BaseException:  # the client left, or its body failed: no verdict on the API
            deployment.breaker.on_abandoned()
            raise
        outcome = self._classify(deployment, result)
        if isinstance(result, UpstreamReply) and result.status in (429, 529):
            log.overloaded = True
        seconds = self._clock() - started
        log.upstream_seconds += seconds
        self._record(log, deployment, result, seconds)
        return outcome

    async def _send(
        self,
        deployment: Deployment,
        request: UpstreamRequest,
        body: bytes | ClientBody | None,
        stream: bool,
        seconds: float | None,
        relay: bool,
    ) -> UpstreamReply | OpenStream | GatewayError:
        headers = upstream_headers(request.headers, deployment.client.api_key, relay=relay)
        if relay and isinstance(body, bytes):
            # The client's length holds for a body streamed through; bytes (read, perhaps
            # changed by a stage) get theirs from the HTTP client.
            headers.popall("content-length", None)
        try:
            async with asyncio.timeout(seconds):
                response = await deployment.client.send(
                    request.method, request.path, headers, body, decompress=not relay
                )
                if relay and response.status < 400:
                    headers = downstream_headers(response.headers, relay=True)
                    return OpenStream(deployment, response, headers)
                if stream and response.status == 200 and response.content_type == _EVENT_STREAM:
                    return OpenStream(deployment, response, downstream_headers(response.headers))
                try:
                    payload = await response.read()
                finally:
                    response.release()
                headers = downstream_headers(response.headers, relay=relay)
                return UpstreamReply(response.status, headers, payload)
        except TimeoutError:
            within = f" within {seconds:g} s" if seconds is not None else ""
            return UpstreamTimeout(f"upstream {deployment.name!r} did not answer{within}")
        except GatewayError as exc:
            if isinstance(body, ClientBody) and body.failure is not None:
                # The HTTP client reports the body's own failure as a failed request.
                raise body.failure from None
            return exc

    def _classify(
        self, deployment: Deployment, result: UpstreamReply | OpenStream | GatewayError
    ) -> UpstreamReply | OpenStream | _Failure:
        breaker = deployment.breaker
        if isinstance(result, OpenStream):
            breaker.on_success()
            return result
        if isinstance(result, GatewayError):
            breaker.on_failure()
            return _Failure(deployment, result)
        if result.status < 400 or not self._policy.should_retry_status(
            result.status, result.headers
        ):
            breaker.on_success()  # the deployment works; a 4xx is the request's own fault
            return result
        advised = retry_after_seconds(result.headers)
        if result.status == 429:
            pause = advised if advised is not None else self._policy.backoff(0, self._rng)
            self.router.cool_down(deployment, pause)
            return _Failure(deployment, result, cooled=True)
        breaker.on_failure()
        return _Failure(deployment, result, advised_delay=advised)

    async def _choose(self, log: AttemptLog) -> Deployment:
        while True:
            deployment = self.router.choose(avoid=log.last_failed)
            if deployment is not None:
                return deployment
            wait, cooling_only = self.router.next_available()
            retry_after = {"retry-after": str(max(1, math.ceil(wait)))} if wait < math.inf else {}
            if not cooling_only:
                # Open breakers mean the deployments are failing: fail fast, don't pile up.
                raise Overloaded(
                    "All upstream deployments are failing (circuit open).", headers=retry_after
                )
            if wait > self.settings.max_delay or self._clock() + wait > log.deadline_at:
                raise RateLimited(
                    "All upstream deployments are rate limited; retry later.", headers=retry_after
                )
            wait = max(wait, 0.001)
            log.backoff_seconds += wait
            await self._sleep(wait)

    def _record(
        self,
        log: AttemptLog,
        deployment: Deployment,
        result: UpstreamReply | OpenStream | GatewayError,
        seconds: float,
    ) -> None:
        if isinstance(result, OpenStream):
            outcome, status = "ok", 200
        elif isinstance(result, UpstreamReply):
            status = result.status
            outcome = "ok" if status < 400 else f"http_{status}"
        else:
            outcome, status = result.error_type, 0
        self.metrics.upstream_attempt(deployment.name, outcome, seconds)
        # Failed attempts are what an operator looks for; successful ones would only
        # repeat the request log line, so they are logged at debug level.
        _log.log(
            logging.DEBUG if outcome == "ok" else logging.INFO,
            "upstream attempt request_id=%s attempt=%d deployment=%s outcome=%s status=%d "
            "duration_ms=%.1f",
            log.request.request_id,
            log.count,
            deployment.name,
            outcome,
            status,
            seconds * 1000,
        )


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


def _not_processed(error: GatewayError | UpstreamReply) -> bool:
    """The API did not act on the request: it was never sent, or refused for load."""
    if isinstance(error, UpstreamReply):
        return error.status in (429, 529)
    return isinstance(error, UpstreamUnreachable)


def _give_up(failure: _Failure) -> UpstreamReply:
    if isinstance(failure.error, UpstreamReply):
        return failure.error
    raise failure.error


def _int_header(value: str | None) -> int:
    try:
        return max(int(value), 0) if value is not None else 0
    except ValueError:
        return 0
