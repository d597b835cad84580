"""Whether a shared store answers, asked cheaply enough for every readiness probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from claude_proxy.state.tasks import stop_tasks

__all__ = ["HealthCheck"]

# A load balancer may probe every replica several times a second: one PING per second
# per replica is all the store should see, and a probe must not wait on a stalled store.
DEFAULT_TTL = 1.0
DEFAULT_TIMEOUT = 1.0
STOP_SECONDS = 1.0


class HealthCheck:
    """The result of ``probe``, cached for ``ttl`` seconds, with at most one probe in flight.

    ``probe`` raises (or takes over ``timeout`` seconds) when the store is unhealthy.
    ``healthy()`` never raises: every caller of one round shares its probe, and a caller
    cancelled meanwhile does not cancel it for the others.
    """

    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        *,
        ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._probe = probe
        self._ttl = ttl
        self._timeout = timeout
        self._healthy = True
        self._checked_at = -float("inf")
        self._running: asyncio.Task[bool] | None = None

    async def healthy(self) -> bool:
        if time.monotonic() - self._checked_at < self._ttl:
            return self._healthy
        if self._running is None:
            self._running = asyncio.create_task(self._check(), name="state-health-check")
        return await asyncio.shield(self._running)

    def observed(self, healthy: bool) -> None:
        """What a real command just showed: it counts as a probe, so readiness follows
        traffic at once instead of up to ``ttl`` later."""
        self._healthy = healthy
        self._checked_at = time.monotonic()

    async def close(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            await stop_tasks([running], deadline=STOP_SECONDS)

    async def _check(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._probe()
            healthy = True
        # Whatever the probe failed with, the answer is "unhealthy": raising instead
        # would leave the shared task's exception to callers that may all be gone.
        except Exception:
            healthy = False
        self._healthy = healthy
        self._checked_at = time.monotonic()
        self._running = None
        return healthy
