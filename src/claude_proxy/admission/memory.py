"""In-process admission: exact windows, token buckets and weighted fair queueing.

What is shared is slots, so a free slot goes to the eligible queue head of the tenant that
holds the fewest slots per unit of weight (max-min fairness: a flood cannot take the
slots of a tenant below its share); among equals, start-time fair queueing decides: each
tenant has a virtual finish time that advances by ``1 / weight`` per grant, never from
behind the system's virtual clock (so an idle tenant cannot bank credit), and the smallest
next finish time wins. Within a tenant, requests are served FIFO. (Fair queueing on grants
alone let a flood win ties against a light tenant just granted, and with the flood's
releases bunched, the light tenant then waited a whole request: p99 2x its own.)

Fair queueing alone cannot protect a light closed-loop tenant from a flood: when its
request ends it has no waiter yet, so the slot it frees goes to the flood and its next
request waits for one. So a tenant that asked within ``active_seconds`` and is below its
weighted share of the window (``window * weight / total weight of active tenants``) with
nothing queued has slots kept free for it: as many as it recently held at once (its peak
over ``active_seconds``), up to its share, less what it holds now, and at least one; others
may take a free slot only if the kept ones stay free. A client with two requests in flight
re-asks for both within milliseconds of their ends, and one kept slot left the second to
wait for a release (benchmarks/fairness.py: 4-5 of 192 admissions over 50 ms, p99 1.9x).
This only holds idle slots back (it never preempts), and a wake-up is scheduled for when
the reservation lapses.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterable
from typing import Self

from claude_proxy.admission.aimd import AimdWindow
from claude_proxy.admission.base import (
    NO_OBSERVER,
    AdmissionObserver,
    AdmissionSnapshot,
    TenantLoad,
    TicketContext,
    Usage,
)
from claude_proxy.admission.bucket import TokenBucket
from claude_proxy.admission.headers import LIMIT_NAMES, LimitLevel, rate_limited
from claude_proxy.errors import RateLimited
from claude_proxy.tenancy import AdmissionSettings, Tenant

__all__ = ["MemoryAdmission"]

_INF = float("inf")
_LAPSE_MARGIN = 0.001  # seconds


class _TenantState:
    __slots__ = (
        "finish",
        "in_flight",
        "last_ask",
        "limits",
        "max_concurrent",
        "peak",
        "peak_at",
        "queue",
        "queued",
        "step",
        "tenant",
        "weight",
    )

    def __init__(self, tenant: Tenant, now: float) -> None:
        settings = tenant.settings
        self.tenant = tenant
        self.max_concurrent = settings.max_concurrent
        self.weight = settings.weight
        self.step = 1.0 / settings.weight
        self.last_ask = -_INF
        self.finish = 0.0
        self.in_flight = 0
        # The most slots held at once recently (peak_at: when it was last reached).
        self.peak = 0
        self.peak_at = -_INF
        self.queued = 0
        self.queue: deque[_Waiter] = deque()
        per_minute = (
            settings.requests_per_minute,
            settings.input_tokens_per_minute,
            settings.output_tokens_per_minute,
        )
        # (index into (requests, input, output), bucket) for the limits that are set.
        self.limits = tuple(
            (index, TokenBucket(capacity, now))
            for index, capacity in enumerate(per_minute)
            if capacity is not None
        )

    def has_room(self) -> bool:
        return self.max_concurrent is None or self.in_flight < self.max_concurrent

    def token_wait(self, input_tokens: int, output_tokens: int, now: float) -> float:
        wait = 0.0
        for index, bucket in self.limits:
            amount = 1 if index == 0 else input_tokens if index == 1 else output_tokens
            wait = max(wait, bucket.wait(amount, now))
        return wait

    def spend(self, input_tokens: int, output_tokens: int) -> None:
        for index, bucket in self.limits:
            bucket.give(-(1 if index == 0 else input_tokens if index == 1 else output_tokens))

    def refund(self, input_tokens: int, output_tokens: int) -> None:
        for index, bucket in self.limits:
            if index:
                bucket.give(input_tokens if index == 1 else output_tokens)

    def head(self) -> _Waiter | None:
        queue = self.queue
        while queue and not queue[0].live:
            queue.popleft()
        return queue[0] if queue else None

    def levels(self, now: float) -> list[LimitLevel]:
        return [
            LimitLevel(LIMIT_NAMES[index], bucket.capacity, bucket.refill(now))
            for index, bucket in self.limits
        ]


class _Waiter:
    __slots__ = ("future", "input_tokens", "live", "output_tokens", "state", "timer")

    def __init__(self, state: _TenantState, input_tokens: int, output_tokens: int) -> None:
        self.state = state
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.future: asyncio.Future[_MemoryTicket] = asyncio.get_running_loop().create_future()
        self.timer: asyncio.TimerHandle | None = None
        self.live = True  # still counted in the queue


class _MemoryTicket(TicketContext):
    __slots__ = ("_input", "_output", "_owner", "_state", "released")

    def __init__(
        self, owner: MemoryAdmission, state: _TenantState, input_tokens: int, output_tokens: int
    ) -> None:
        self._owner = owner
        self._state = state
        self._input = input_tokens
        self._output = output_tokens
        self.released = False

    @property
    def tenant(self) -> Tenant:
        return self._state.tenant

    async def release(self, usage: Usage | None = None) -> None:
        self._owner._release(self._state, self, usage)

    def __repr__(self) -> str:
        return f"<MemoryTicket tenant={self._state.tenant.name!r} released={self.released}>"


class MemoryAdmission:
    """Admission for one process; every operation is synchronous apart from waiting."""

    def __init__(
        self,
        settings: AdmissionSettings,
        tenants: Iterable[Tenant],
        observer: AdmissionObserver = NO_OBSERVER,
    ) -> None:
        now = time.monotonic()
        self._observer = observer
        self._window = AimdWindow(settings)
        self._tenants = {tenant.name: _TenantState(tenant, now) for tenant in tenants}
        self._states = tuple(self._tenants.values())
        self._in_flight = 0
        self._waiting = 0
        self._vclock = 0.0
        self._refill_timer: asyncio.TimerHandle | None = None
        # Spare slots: tenants that asked within active_seconds (or are queued), a superset
        # pruned lazily; its length bounds the number of reservations for the fast path.
        self._active_seconds = settings.active_seconds
        self._recent: dict[_TenantState, None] = {}

    @classmethod
    async def open(
        cls,
        settings: AdmissionSettings,
        tenants: Iterable[Tenant],
        observer: AdmissionObserver = NO_OBSERVER,
    ) -> Self:
        return cls(settings, tenants, observer)

    async def admit(
        self, tenant: Tenant, input_tokens: int, max_output_tokens: int
    ) -> _MemoryTicket:
        state = self._tenants[tenant.name]
        now = time.monotonic()
        recent = self._recent
        if self._active_seconds:
            state.last_ask = now
            if state not in recent:
                recent[state] = None
        token_wait = state.token_wait(input_tokens, max_output_tokens, now)
        free = self._window.size - self._in_flight
        if (
            not self._waiting
            and token_wait == 0.0
            and free > 0
            and state.has_room()
            # At most len(recent) - 1 other tenants can hold a slot in reserve.
            and free > self._reserved(state, now)[0]
        ):
            return self._grant(state, input_tokens, max_output_tokens)
        queue_timeout = tenant.settings.queue_timeout
        if token_wait > queue_timeout:
            raise self._limited(state, "per-minute limit reached", token_wait, now)
        waiter = _Waiter(state, input_tokens, max_output_tokens)
        state.queue.append(waiter)
        state.queued += 1
        self._waiting += 1
        self._dispatch()
        if waiter.future.done():
            return await waiter.future
        waiter.timer = asyncio.get_running_loop().call_later(queue_timeout, self._expire, waiter)
        self._observer.tenant_waiting(tenant.name, 1)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        finally:
            self._observer.tenant_waiting(tenant.name, -1)

    async def on_upstream_status(self, status: int) -> None:
        if self._window.on_status(status, time.monotonic()):
            self._dispatch()

    async def snapshot(self) -> AdmissionSnapshot:
        return AdmissionSnapshot(
            window=self._window.size,
            upstream_max=self._window.maximum,
            in_flight=self._in_flight,
            queued=self._waiting,
            tenants={
                name: TenantLoad(state.in_flight, state.queued)
                for name, state in self._tenants.items()
            },
        )

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        if self._refill_timer is not None:
            self._refill_timer.cancel()
            self._refill_timer = None

    def _grant(self, state: _TenantState, input_tokens: int, output_tokens: int) -> _MemoryTicket:
        self._in_flight += 1
        state.in_flight += 1
        self._observer.tenant_holding(state.tenant.name, 1)
        now = time.monotonic()
        if state.in_flight >= state.peak or state.peak_at <= now - self._active_seconds:
            state.peak, state.peak_at = state.in_flight, now
        if state.limits:
            state.spend(input_tokens, output_tokens)
        start = max(state.finish, self._vclock)
        state.finish = start + state.step
        self._vclock = start
        return _MemoryTicket(self, state, input_tokens, output_tokens)

    def _release(self, state: _TenantState, ticket: _MemoryTicket, usage: Usage | None) -> None:
        if ticket.released:
            return
        ticket.released = True
        self._in_flight -= 1
        state.in_flight -= 1
        self._observer.tenant_holding(state.tenant.name, -1)
        if state.limits:
            used_in = usage.rate_limited_input_tokens if usage else 0
            used_out = usage.output_tokens if usage else 0
            state.refund(ticket._input - used_in, ticket._output - used_out)
        if self._waiting:
            self._dispatch()

    def _unqueue(self, waiter: _Waiter) -> None:
        waiter.live = False
        waiter.state.queued -= 1
        self._waiting -= 1
        if waiter.timer is not None:
            waiter.timer.cancel()

    def _reserved(self, asking: _TenantState | None, now: float) -> tuple[int, float]:
        """Slots to keep free for active tenants other than ``asking`` that are below their
        share with nothing queued, and the seconds until the first reservation lapses."""
        recent = self._recent
        horizon = now - self._active_seconds
        total = 0.0
        stale: list[_TenantState] = []
        for state in recent:
            if state.queued or state.last_ask > horizon:
                total += state.weight
            else:
                stale.append(state)
        for state in stale:
            del recent[state]
        if len(recent) < 2:
            return 0, _INF
        window = self._window.size
        count, lapse = 0, _INF
        for state in recent:
            if state is asking or state.queued or not state.has_room():
                continue
            share = window * state.weight / total
            if state.in_flight < share:
                peak = state.peak if state.peak_at > horizon else 0
                want = min(peak, math.floor(share)) - state.in_flight
                if state.max_concurrent is not None:
                    want = min(want, state.max_concurrent - state.in_flight)
                count += max(want, 1)
                lapse = min(lapse, state.last_ask - horizon)
        return count, lapse

    def _dispatch(self) -> None:
        """Grant free slots to eligible queue heads, smallest virtual finish time first."""
        now = time.monotonic()
        next_wake = _INF
        while self._waiting and self._in_flight < self._window.size:
            best: _TenantState | None = None
            best_key = (_INF, _INF)
            for state in self._states:
                if not state.queued or not state.has_room():
                    continue
                head = state.head()
                if head is None:
                    continue
                wait = state.token_wait(head.input_tokens, head.output_tokens, now)
                if wait > 0.0:
                    next_wake = min(next_wake, wait)
                    continue
                key = (state.in_flight * state.step, max(state.finish, self._vclock) + state.step)
                if key < best_key:
                    best, best_key = state, key
            if best is None:
                break
            # Queued tenants reserve nothing, so every candidate sees the same reservations.
            free = self._window.size - self._in_flight
            if len(self._recent) > 1:
                held, lapse = self._reserved(None, now)
                if free <= held:
                    # Recheck when the first reservation lapses (a little after, so that
                    # tenant is surely inactive by then); arrivals and releases dispatch too.
                    next_wake = min(next_wake, lapse + _LAPSE_MARGIN)
                    break
            waiter = best.queue.popleft()
            self._unqueue(waiter)
            if waiter.future.done():
                # Its caller was cancelled and has not yet run to leave the queue.
                continue
            waiter.future.set_result(self._grant(best, waiter.input_tokens, waiter.output_tokens))
        if next_wake < _INF:
            self._wake_after(next_wake)

    def _wake_after(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        timer = self._refill_timer
        if timer is not None and timer.when() <= loop.time() + delay:
            return
        if timer is not None:
            timer.cancel()
        self._refill_timer = loop.call_later(delay, self._on_refill)

    def _on_refill(self) -> None:
        self._refill_timer = None
        self._dispatch()

    def _expire(self, waiter: _Waiter) -> None:
        if not waiter.live or waiter.future.done():
            return
        self._unqueue(waiter)
        state, now = waiter.state, time.monotonic()
        wait = state.token_wait(waiter.input_tokens, waiter.output_tokens, now)
        reason = f"no capacity within queue_timeout ({state.tenant.settings.queue_timeout:g} s)"
        waiter.future.set_exception(self._limited(state, reason, wait, now))
        self._dispatch()

    def _abandon(self, waiter: _Waiter) -> None:
        """The caller was cancelled: leave the queue, or give back a grant it never saw."""
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            ticket = future.result()
            self._release(ticket._state, ticket, None)
            return
        if waiter.live:
            self._unqueue(waiter)
            self._dispatch()

    def _limited(self, state: _TenantState, reason: str, wait: float, now: float) -> RateLimited:
        wall = time.time()
        return rate_limited(state.tenant.name, reason, wait, state.levels(now), wall)
