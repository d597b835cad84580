"""Services: the stateful parts of one gateway app, built from Settings at start-up.

This is the only container of state; handlers reach it through the app, never
through module globals.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from claude_proxy.admission import Admission, open_admission
from claude_proxy.config import Settings
from claude_proxy.errors import RequestIds
from claude_proxy.observability import Metrics, NullMetrics, get_logger
from claude_proxy.streaming.streams import Streams
from claude_proxy.tenancy import TenantDirectory
from claude_proxy.upstream.client import UpstreamClient
from claude_proxy.upstream.forwarder import Forwarder
from claude_proxy.upstream.router import Router

__all__ = ["SERVICES", "SETTINGS", "Services", "services_context"]


@dataclass(slots=True)
class Services:
    settings: Settings
    router: Router
    forwarder: Forwarder
    tenants: TenantDirectory
    admission: Admission
    streams: Streams
    metrics: Metrics
    # The per-request log line goes here (structlog, configured by the CLI); None when
    # the log level leaves it out, so that its fields are not even gathered.
    request_log: Any
    request_ids: RequestIds
    # Precomputed so the hot path does not re-derive it per request.
    check_peers: bool
    ready: bool = False


SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)


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
    streams = await Streams.open(settings.streams, settings.state)
    services = Services(
        settings=settings,
        router=router,
        forwarder=Forwarder(settings, router, metrics=metrics),
        tenants=tenants,
        admission=admission,
        streams=streams,
        metrics=metrics,
        request_log=get_logger("claude_proxy.requests")
        if settings.log.level in ("debug", "info")
        else None,
        request_ids=RequestIds(),
        # Without tenants nobody is authenticated: only this host's clients are served.
        check_peers=tenants.is_open
        and not (settings.allow_remote_without_auth or settings.listen.is_loopback),
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
        await streams.close()
        await admission.close()
        await router.close()
