"""Failing open: shared admission that, while its store is down, admits on local limits.

With ``admission.on_state_failure: open`` the Redis backend is wrapped in this. While
Redis answers, every decision is the shared one. When a request finds Redis unreachable,
it and those after it are admitted by an in-process backend with the same settings (the
tenant windows, per-minute limits and upstream window, per replica: N replicas may
allow N times the limits), until the store's health check answers again. Tickets are
released where they were granted; requests admitted locally are not counted by the
shared window once Redis is back, for as long as they last.

Outages are logged when they start and end, and each local admission is told to an
observer that implements ``StateFailureObserver``.
"""

from __future__ import annotations

import logging
import time

from claude_proxy.admission.base import (
    NO_OBSERVER,
    Admission,
    AdmissionObserver,
    AdmissionSnapshot,
    StateFailureObserver,
    Ticket,
)
from claude_proxy.state import StateUnavailable
from claude_proxy.tenancy import Tenant

__all__ = ["FailOpenAdmission"]

_log = logging.getLogger("claude_proxy.admission")


class FailOpenAdmission:
    """``shared`` while its store answers, ``local`` while it does not."""

    def __init__(
        self, shared: Admission, local: Admission, observer: AdmissionObserver = NO_OBSERVER
    ) -> None:
        self._shared = shared
        self._local = local
        self._counter = observer if isinstance(observer, StateFailureObserver) else None
        self._down_since: float | None = None

    async def admit(self, tenant: Tenant, input_tokens: int, max_output_tokens: int) -> Ticket:
        # While down, the health check (cached, one PING at a time) decides when to try
        # the store again, so that requests do not each wait on a store that is gone.
        if self._down_since is None or await self._shared.healthy():
            try:
                ticket = await self._shared.admit(tenant, input_tokens, max_output_tokens)
            except StateUnavailable as exc:
                self._went_down(exc)
            else:
                self._came_back()
                return ticket
        ticket = await self._local.admit(tenant, input_tokens, max_output_tokens)
        if self._counter is not None:
            self._counter.admitted_without_shared_state(tenant.name)
        return ticket

    async def on_upstream_status(self, status: int) -> None:
        # Both windows learn, so the local one is not wide open at the next outage.
        await self._local.on_upstream_status(status)
        if self._down_since is None:
            await self._shared.on_upstream_status(status)

    async def snapshot(self) -> AdmissionSnapshot:
        if self._down_since is None:
            try:
                return await self._shared.snapshot()
            except StateUnavailable as exc:
                self._went_down(exc)
        return await self._local.snapshot()

    async def healthy(self) -> bool:
        return await self._shared.healthy()

    async def close(self) -> None:
        try:
            await self._shared.close()
        finally:
            await self._local.close()

    def _went_down(self, exc: StateUnavailable) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            _log.warning(
                "admission fails open (admission.on_state_failure: open): shared state is "
                "unavailable (%s); admitting on this replica's own limits until it answers",
                exc.__cause__ or exc,
            )

    def _came_back(self) -> None:
        if self._down_since is not None:
            _log.warning(
                "admission back on shared limits after %.1f s on this replica's own",
                time.monotonic() - self._down_since,
            )
            self._down_since = None
