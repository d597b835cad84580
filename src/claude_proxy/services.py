"""Services: the stateful parts of one gateway app, built from Settings at start-up.

This is the only container of state; handlers reach it through the app, never
through module globals.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from claude_proxy.admission import Admission, open_admission
from claude_proxy.config import Settings
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
    # Precomputed so the hot path does not re-derive it per request.
    check_peers: bool
    ready: bool = False


SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)


async def services_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: build the services on start-up, close them on shutdown."""
    settings = app[SETTINGS]
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
    tenants = TenantDirectory.from_settings(settings.tenants)
    admission = await open_admission(settings.admission_settings, tenants.tenants)
    services = Services(
        settings=settings,
        router=router,
        forwarder=Forwarder(settings, router),
        tenants=tenants,
        admission=admission,
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
        await admission.close()
        await router.close()
