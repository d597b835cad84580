"""The admission contract: what the pipeline asks of any backend, and the data it gets back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from claude_proxy.tenancy import Tenant

__all__ = [
    "NO_OBSERVER",
    "Admission",
    "AdmissionObserver",
    "AdmissionSnapshot",
    "StateFailureObserver",
    "TenantLoad",
    "Ticket",
    "TicketContext",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as the API reports it (``usage`` of a message or of ``message_delta``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def rate_limited_input_tokens(self) -> int:
        """Input tokens that count toward input-tokens-per-minute: cache reads do not."""
        return self.input_tokens + self.cache_creation_input_tokens

    @classmethod
    def from_api(cls, usage: Mapping[str, Any]) -> Usage:
        def count(name: str) -> int:
            value = usage.get(name)
            return value if isinstance(value, int) else 0

        return cls(
            count("input_tokens"),
            count("output_tokens"),
            count("cache_creation_input_tokens"),
            count("cache_read_input_tokens"),
        )


class Ticket(Protocol):
    """A granted admission: one slot in the tenant's and the upstream window, plus tokens."""

    @property
    def tenant(self) -> Tenant: ...

    async def release(self, usage: Usage | None = None) -> None:
        """Free the slots and reconcile the reservation with ``usage``; idempotent.

        ``None`` means nothing was consumed upstream: the token reservations are returned
        (the request still counts toward requests-per-minute).
        """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class TicketContext(ABC):
    """``async with ticket:`` releases it on exit (with no usage if not released before)."""

    __slots__ = ()

    @abstractmethod
    async def release(self, usage: Usage | None = None) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release(None)


@dataclass(frozen=True, slots=True)
class TenantLoad:
    in_flight: int
    queued: int


@dataclass(frozen=True, slots=True)
class AdmissionSnapshot:
    """Plain numbers for metrics and the dashboard."""

    window: int
    upstream_max: int
    in_flight: int
    queued: int
    tenants: dict[str, TenantLoad]


class AdmissionObserver(Protocol):
    """Told what this process's requests wait for and hold (``Metrics`` is one).

    Each backend reports from the places that decide: a slot granted, a slot released
    (once per ticket, however often ``release`` is called), a wait begun and ended. Only
    real waits are reported: a request granted at once touches the waiting count not at
    all. Counts are this process's only, so that summing them over processes is right.
    """

    def tenant_waiting(self, tenant: str | None, delta: int) -> None: ...

    def tenant_holding(self, tenant: str | None, delta: int) -> None: ...


class _NoObserver:
    def tenant_waiting(self, tenant: str | None, delta: int) -> None:
        pass

    def tenant_holding(self, tenant: str | None, delta: int) -> None:
        pass


NO_OBSERVER: AdmissionObserver = _NoObserver()


@runtime_checkable
class StateFailureObserver(Protocol):
    """An observer that also counts requests admitted without the shared state.

    Optional: with ``admission.on_state_failure: open``, an observer that has this method
    hears of every request admitted on this replica's own limits while the store is down.
    """

    def admitted_without_shared_state(self, tenant: str | None) -> None: ...


class Admission(Protocol):
    """Waits for capacity fairly, enforces per-tenant limits, adapts the upstream window."""

    async def admit(self, tenant: Tenant, input_tokens: int, max_output_tokens: int) -> Ticket:
        """Wait for a slot in ``tenant``'s window and in the upstream window.

        Reserves one request, ``input_tokens`` (an estimate) and ``max_output_tokens``.
        Raises RateLimited (with retry-after and anthropic-ratelimit-* headers) when the
        wait would exceed the tenant's ``queue_timeout``. Cancelling the caller while it
        waits leaves the queue at once and holds nothing.
        """

    async def on_upstream_status(self, status: int) -> None:
        """Feed the adaptive window: 429/529 shrink it, successes grow it back.

        Never raises for a store that is down (neither does ``Ticket.release``): both run
        after an answer the client has paid for.
        """

    async def snapshot(self) -> AdmissionSnapshot: ...

    async def healthy(self) -> bool:
        """Whether the store behind the limits answers now (memory: always).

        Cheap enough for every readiness probe: a backend with a remote store asks it at
        most about once a second, never twice at once, and never raises.
        """

    async def close(self) -> None:
        """Stop background work. Tickets still held are left to expire (a clean shutdown
        drains requests first)."""
