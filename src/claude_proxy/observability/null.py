"""Metrics switched off (``metrics.enabled: false``): the same calls, recording nothing.

For deployments that scrape nothing, and to measure what collecting metrics costs
(``benchmarks/overhead.py --metrics-cost`` runs a gateway with them off beside one
with them on). ``render`` and ``snapshot`` still answer, with empty families.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from claude_proxy.observability.metrics import Metrics, UsageLike

__all__ = ["NullMetrics"]


class NullMetrics(Metrics):
    """Every recording call returns at once; the registry stays empty of samples.

    It overrides every recording method of ``Metrics`` (a test keeps it so): a disabled
    part is a complete null object, never one that records half of what it is told.
    """

    def request_started(self) -> None:
        pass

    def request_finished(self, **fields: Any) -> None:
        pass

    def token_gap(self, seconds: float) -> None:
        pass

    def stream_opened(self) -> None:
        pass

    def stream_closed(self) -> None:
        pass

    def queue_wait(self, tenant: str | None, seconds: float) -> None:
        pass

    def upstream_attempt(self, deployment: str, outcome: str, seconds: float) -> None:
        pass

    def retry(self) -> None:
        pass

    def gave_up(self, reason: str) -> None:
        pass

    def stream_broke(self, deployment: str, reason: str) -> None:
        pass

    def heal(self) -> None:
        pass

    def unhealable(self) -> None:
        pass

    def tokens_used(self, tenant: str | None, model: str | None, usage: UsageLike) -> None:
        pass

    def resume(self) -> None:
        pass

    def continuation(self) -> None:
        pass

    def redaction(self, entity: str, action: str, count: int = 1) -> None:
        pass

    def policy_applied(self, policy: str, parameter: str, action: str) -> None:
        pass

    def policy_skipped(self, policy: str, parameter: str, reason: str) -> None:
        pass

    def prompt_cache(self, outcome: str, added: Iterable[str]) -> None:
        pass

    def session_cache_hit(self) -> None:
        pass

    def response_cache_lookup(self, tenant: str | None, result: str, reason: str = "") -> None:
        pass

    def response_cache_store(self, result: str) -> None:
        pass

    def response_cache_bytes(self, held: int) -> None:
        pass

    def admitted_without_shared_state(self, tenant: str | None) -> None:
        pass

    def set_breaker(self, deployment: str, state: int | str) -> None:
        pass

    def set_window(self, n: int) -> None:
        pass

    def set_tenant_load(self, tenant: str | None, in_flight: int, queued: int) -> None:
        pass

    def tenant_waiting(self, tenant: str | None, delta: int) -> None:
        pass

    def tenant_holding(self, tenant: str | None, delta: int) -> None:
        pass

    def gc_pause(self, generation: int, seconds: float) -> None:
        pass
