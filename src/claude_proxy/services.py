"""Services: the stateful parts of one gateway app, built from Settings at start-up.

This is the only container of state; handlers reach it through the app, never
through module globals.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from claude_proxy.admission import Admission, open_admission
from claude_proxy.config import Settings
from claude_proxy.errors import RequestIds
from claude_proxy.observability import Metrics, NullMetrics, get_logger
from claude_proxy.pipeline.build import build_pipeline
from claude_proxy.pipeline.chain import Pipeline
from claude_proxy.pipeline.counting import UpstreamCounter
from claude_proxy.pipeline.service import UpstreamCalls
from claude_proxy.pipeline.stage import Stage
from claude_proxy.pipeline.stages.response_cache import ResponseCacheStage
from claude_proxy.response_cache import ResponseCache, open_response_cache
from claude_proxy.sessions import SessionStore, open_store
from claude_proxy.streaming.streams import Streams
from claude_proxy.tenancy import TenantDirectory
from claude_proxy.tokens import EstimatingCounter, TokenCounter
from claude_proxy.upstream.client import UpstreamClient
from claude_proxy.upstream.forwarder import Forwarder
from claude_proxy.upstream.router import Router

__all__ = ["EXTRA_STAGES", "SERVICES", "SETTINGS", "Services", "StageFactory", "services_context"]

_log = logging.getLogger("claude_proxy")
# How long each backend may take to close at shutdown before it is left behind.
CLOSE_DEADLINE = 5.0


@dataclass(slots=True)
class Services:
    settings: Settings
    router: Router
    forwarder: Forwarder
    tenants: TenantDirectory
    admission: Admission
    streams: Streams
    metrics: Metrics
    # The one way to call the API (admission, retries, healing, token metrics).
    calls: UpstreamCalls
    # The stages of every route, in order.
    pipeline: Pipeline
    request_ids: RequestIds
    # Conversations by x-session-id (None: sessions are off).
    sessions: SessionStore | None = None
    # Whole answers to identical requests (None: no tenant has the response cache).
    response_cache: ResponseCache | None = None
    ready: bool = False


StageFactory = Callable[[Services], Sequence[Stage]]
"""Stages an embedding application adds after the gateway's own (before the response
cache, which is last), built once the services exist (a stage may make sub-calls through
``services.calls``)."""

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
EXTRA_STAGES: web.AppKey[StageFactory] = web.AppKey("extra_stages")


async def services_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: build the services on start-up, close them on shutdown."""
    settings = app[SETTINGS]
    tenants = TenantDirectory.from_settings(settings.tenants)
    metrics = (Metrics if settings.metrics.enabled else NullMetrics)(
        [] if tenants.is_open else [tenant.name for tenant in tenants.tenants],
        multiprocess_dir=settings.metrics.multiprocess_dir,
    )
    router = Router(
        (
            (
                UpstreamClient(upstream, settings.timeouts, settings.upstream_pool_size),
                upstream.weight,
            )
            for upstream in settings.upstreams
        ),
        settings.breaker,
        clock=time.monotonic,
        rng=random.Random(),
    )
    admission = await open_admission(settings.admission_settings, tenants.tenants, metrics)
    streams = await Streams.open(
        settings.streams, settings.replay_settings, settings.state, metrics
    )
    sessions = (
        await open_store(settings.sessions.url, settings.sessions)
        if settings.sessions is not None
        else None
    )
    cache_settings = settings.response_cache_settings
    response_cache = (
        await open_response_cache(cache_settings.url, cache_settings)
        if ResponseCacheStage.wanted(cache_settings, tenants)
        else None
    )
    forwarder = Forwarder(settings, router, metrics=metrics)
    counter: TokenCounter = EstimatingCounter()
    if settings.retry.heal_token_count == "count_tokens":
        counter = UpstreamCounter(forwarder)
    services = Services(
        settings=settings,
        router=router,
        forwarder=forwarder,
        tenants=tenants,
        admission=admission,
        streams=streams,
        metrics=metrics,
        calls=UpstreamCalls(forwarder, admission, metrics, counter),
        pipeline=Pipeline(()),
        request_ids=RequestIds(),
        sessions=sessions,
        response_cache=response_cache,
    )
    services.pipeline = build_pipeline(
        settings,
        tenants=tenants,
        metrics=metrics,
        # The per-request log line (structlog, configured by the CLI); None when the
        # log level leaves it out, so that its fields are not even gathered.
        request_log=get_logger("claude_proxy.requests")
        if settings.log.level in ("debug", "info")
        else None,
        # Without tenants nobody is authenticated: only this host's clients are served.
        loopback_only=tenants.is_open
        and not (settings.allow_remote_without_auth or settings.listen.is_loopback),
        sessions=sessions,
        calls=services.calls,
        response_cache=response_cache,
        extra=extra(services) if (extra := app.get(EXTRA_STAGES)) is not None else (),
    )
    app[SERVICES] = services
    services.ready = True
    try:
        yield
    finally:
        services.ready = False
        # Handlers have drained (the runner waits for them); detached generations,
        # waiting for a resume, get the same drain period before they are cancelled.
        await streams.drain(settings.shutdown.drain_seconds)
        await _close_within("the replay log", streams.close)
        await _close_within("the last answers' admission settles", services.calls.drain)
        await _close_within("admission", admission.close)
        if sessions is not None:
            await _close_within("the session store", sessions.close)
        if response_cache is not None:
            await _close_within("the response cache", response_cache.close)
        await _close_within("the upstream clients", router.close)


async def _close_within(what: str, close: Callable[[], Awaitable[None]]) -> None:
    """Close one backend; a backend that hangs must not keep the process from exiting."""
    try:
        async with asyncio.timeout(CLOSE_DEADLINE):
            await close()
    except TimeoutError:
        _log.warning("closing %s took over %g s; left behind", what, CLOSE_DEADLINE)
