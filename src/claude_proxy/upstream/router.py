"""Spread requests over deployments by weight; fail over around broken or cooling ones.

Each deployment has a circuit breaker (repeated failures take it out) and a
cooldown (its own 429 ``retry-after`` pauses only that deployment).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from claude_proxy.config import BreakerSettings
from claude_proxy.upstream.breaker import BreakerState, CircuitBreaker
from claude_proxy.upstream.client import UpstreamClient

__all__ = ["Deployment", "Router"]


@dataclass(slots=True)
class Deployment:
    client: UpstreamClient
    weight: float
    breaker: CircuitBreaker
    cooldown_until: float = 0.0
    attempts: int = 0

    @property
    def name(self) -> str:
        return self.client.name

    def available(self, now: float) -> bool:
        return now >= self.cooldown_until and self.breaker.allows_request()


class Router:
    def __init__(
        self,
        clients: Iterable[tuple[UpstreamClient, float]],
        breaker: BreakerSettings,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self.deployments = [
            Deployment(
                client=client,
                weight=weight,
                breaker=CircuitBreaker(breaker, clock),
            )
            for client, weight in clients
        ]

    def choose(self, avoid: str | None = None) -> Deployment | None:
        """A deployment by weight among the available ones, preferring not ``avoid``."""
        now = self._clock()
        available = [d for d in self.deployments if d.available(now)]
        preferred = [d for d in available if d.name != avoid] or available
        if not preferred:
            return None
        if len(preferred) == 1:
            return preferred[0]
        return self._rng.choices(preferred, weights=[d.weight for d in preferred])[0]

    def next_available(self) -> tuple[float, bool]:
        """Seconds until some deployment can take a request again, and whether that
        wait is only a cooldown (a pause the upstream asked for) rather than open breakers."""
        now = self._clock()
        best, cooling_only = float("inf"), False
        for deployment in self.deployments:
            cooldown = max(deployment.cooldown_until - now, 0.0)
            probe = deployment.breaker.seconds_until_probe()
            if deployment.breaker.state is BreakerState.HALF_OPEN:
                probe = 0.0 if deployment.breaker.allows_request() else float("inf")
            wait = max(cooldown, probe)
            if wait < best:
                best, cooling_only = wait, probe == 0.0
        return best, cooling_only

    def cool_down(self, deployment: Deployment, seconds: float) -> None:
        deployment.cooldown_until = max(deployment.cooldown_until, self._clock() + seconds)

    async def close(self) -> None:
        for deployment in self.deployments:
            await deployment.client.close()
