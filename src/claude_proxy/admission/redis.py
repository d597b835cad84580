"""Admission shared by every replica through Redis: the same rules as memory, made atomic.

Every decision runs in one Lua script (see ``redis_scripts``), so limits hold across
replicas exactly. Slots are leases renewed by a background task; a replica that dies
stops renewing and its slots expire after ``lease_seconds``. A waiting replica learns of
its grant from the ``grants`` channel, and polls (20 ms backing off to 0.5 s) in case a
message was lost or a dead replica's lease has to run out. A poll also grants what only
time makes eligible: a token-blocked head, or a waiter held back by a spare slot kept for
another tenant (see ``memory``) whose reservation lapsed; PUMP says when that will be.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Iterable
from typing import Any, Self

from redis import asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from claude_proxy.admission import redis_scripts as lua
from claude_proxy.admission.base import (
    NO_OBSERVER,
    AdmissionObserver,
    AdmissionSnapshot,
    TenantLoad,
    TicketContext,
    Usage,
)
from claude_proxy.admission.headers import LIMIT_NAMES, LimitLevel, rate_limited
from claude_proxy.errors import RateLimited
from claude_proxy.state import StateUnavailable
from claude_proxy.state.redis import close_within, open_redis, translate_redis_errors
from claude_proxy.state.tasks import cancel_requested, stop_tasks
from claude_proxy.tenancy import AdmissionSettings, Tenant

__all__ = ["RedisAdmission"]

_log = logging.getLogger("claude_proxy.admission")

POLL_MIN = 0.02
POLL_MAX = 0.5
STOP_SECONDS = 1.0  # close() waits this long for the background tasks, then gives up


class _QueueTimeout(Exception):
    """Set on a waiter's future when its queue_timeout passes."""


class _Waiter:
    __slots__ = ("future", "input_tokens", "output_tokens", "tenant")

    def __init__(self, tenant: Tenant, input_tokens: int, output_tokens: int) -> None:
        self.tenant = tenant
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.future: asyncio.Future[_RedisTicket] = asyncio.get_running_loop().create_future()


class _RedisTicket(TicketContext):
    __slots__ = ("_owner", "id", "input_tokens", "output_tokens", "released", "tenant")

    def __init__(self, owner: RedisAdmission, ticket_id: str, waiter: _Waiter) -> None:
        self._owner = owner
        self.id = ticket_id
        self.tenant = waiter.tenant
        self.input_tokens = waiter.input_tokens
        self.output_tokens = waiter.output_tokens
        self.released = False

    async def release(self, usage: Usage | None = None) -> None:
        await self._owner._release(self, usage)

    def __repr__(self) -> str:
        return f"<RedisTicket tenant={self.tenant.name!r} released={self.released}>"


def _limits(tenant: Tenant) -> tuple[int | None, int | None, int | None]:
    s = tenant.settings
    return s.requests_per_minute, s.input_tokens_per_minute, s.output_tokens_per_minute


def _expire(future: asyncio.Future[_RedisTicket]) -> None:
    if not future.done():
        future.set_exception(_QueueTimeout())


class RedisAdmission:
    """Admission whose state lives in Redis; one instance per replica."""

    def __init__(
        self,
        settings: AdmissionSettings,
        tenants: Iterable[Tenant],
        client: aioredis.Redis,
        observer: AdmissionObserver = NO_OBSERVER,
    ) -> None:
        self._settings = settings
        self._observer = observer
        self._client = client
        self._tenants = {tenant.name: tenant for tenant in tenants}
        self._base = [settings.key_prefix, str(max(1, int(settings.lease_seconds * 1000)))]
        self._poll_max = min(POLL_MAX, settings.lease_seconds / 4)
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(getattr(lua, name)) for name in lua.__all__
        }
        self._waiting: dict[str, _Waiter] = {}
        self._held: dict[str, _RedisTicket] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @classmethod
    async def open(
        cls,
        settings: AdmissionSettings,
        tenants: Iterable[Tenant],
        observer: AdmissionObserver = NO_OBSERVER,
    ) -> Self:
        self = cls(settings, tenants, open_redis(settings.state), observer)
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self) -> None:
        args: list[Any] = list(self._base)
        for tenant in self._tenants.values():
            maxc = tenant.settings.max_concurrent
            weight = tenant.settings.weight
            args += [tenant.name, -1 if maxc is None else maxc, repr(1.0 / weight), repr(weight)]
            args += [-1 if limit is None else limit for limit in _limits(tenant)]
        s = self._settings
        args += [
            s.upstream_max_concurrent,
            s.window_min,
            repr(s.decrease_factor),
            s.increase_step,
            int(s.decrease_cooldown * 1000),
            int(s.active_seconds * 1000),
        ]
        with translate_redis_errors("configuring admission"):
            await self._scripts["SETUP"](args=args)
            await self._pubsub.subscribe(s.key_prefix + "grants")
        jobs = {"listen": self._listen(), "pump": self._pump(), "renew": self._renew()}
        for name, job in jobs.items():
            self._tasks.append(asyncio.create_task(job, name=f"admission-{name}"))

    async def _run(self, name: str, *args: Any) -> Any:
        with translate_redis_errors("admitting a request"):
            return await self._scripts[name](args=[*self._base, *args])

    async def admit(
        self, tenant: Tenant, input_tokens: int, max_output_tokens: int
    ) -> _RedisTicket:
        timeout = tenant.settings.queue_timeout
        needs = (1, input_tokens, max_output_tokens)
        limits = zip(needs, _limits(tenant), strict=True)
        if any(limit is not None and need > limit for need, limit in limits):
            raise self._limited(tenant, "request exceeds a per-minute limit", math.inf, None)
        ticket_id = secrets.token_hex(12)
        waiter = self._waiting[ticket_id] = _Waiter(tenant, input_tokens, max_output_tokens)
        try:
            code, wait, levels = await self._run(
                "ADMIT",
                tenant.name,
                ticket_id,
                input_tokens,
                max_output_tokens,
                int(timeout * 1000),
            )
            if cancel_requested():  # the reply beat a cancel redis-py lost (see state.tasks)
                raise asyncio.CancelledError  # undo: no queueing for a client that left
        except BaseException:
            self._abandon(ticket_id, waiter)
            raise
        if code != 0:
            self._waiting.pop(ticket_id, None)
            if code == 1:
                return self._hold(ticket_id, waiter)
            wait_s = float(wait) / 1000
            raise self._limited(tenant, "per-minute limit reached", wait_s, levels)
        self._wake.set()
        timer = asyncio.get_running_loop().call_later(timeout, _expire, waiter.future)
        self._observer.tenant_waiting(tenant.name, 1)
        try:
            return await waiter.future
        except _QueueTimeout:
            self._waiting.pop(ticket_id, None)
            granted, wait, levels = await self._run("CANCEL", tenant.name, ticket_id, *needs[1:], 0)
            if granted:  # the grant raced the timeout: take it
                return self._hold(ticket_id, waiter)
            reason = f"no capacity within queue_timeout ({timeout:g} s)"
            raise self._limited(tenant, reason, float(wait) / 1000, levels) from None
        except asyncio.CancelledError:
            self._abandon(ticket_id, waiter)
            raise
        finally:
            timer.cancel()
            self._observer.tenant_waiting(tenant.name, -1)

    async def on_upstream_status(self, status: int) -> None:
        await self._run("STATUS", status)

    async def snapshot(self) -> AdmissionSnapshot:
        names = list(self._tenants)
        data = await self._run("SNAPSHOT", *names)
        tenants = {
            name: TenantLoad(int(data[3 + 2 * i]), int(data[4 + 2 * i]))
            for i, name in enumerate(names)
        }
        queued = sum(load.queued for load in tenants.values())
        return AdmissionSnapshot(int(data[0]), int(data[1]), int(data[2]), queued, tenants)

    async def close(self) -> None:
        """Stop the background tasks and close the connections, within a few seconds."""
        # A cancel lost in a Redis command (CPython gh-86296, see state.tasks) leaves a loop
        # running: the flag ends it at its next turn, and the wake gets a parked pump there.
        self._closing = True
        self._wake.set()
        await stop_tasks(self._tasks, deadline=STOP_SECONDS)
        self._tasks.clear()
        if self._cleanups:
            await asyncio.wait(self._cleanups, timeout=1.0)
        pubsub_closed = self._pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated
        await close_within(pubsub_closed, "the admission grant channel")
        await close_within(self._client.aclose(), "the admission Redis client")

    def _stopping(self) -> bool:
        """Whether a background loop must end: closing, or cancelled though it never raised."""
        return self._closing or cancel_requested()

    def _hold(self, ticket_id: str, waiter: _Waiter) -> _RedisTicket:
        ticket = self._held[ticket_id] = _RedisTicket(self, ticket_id, waiter)
        self._observer.tenant_holding(waiter.tenant.name, 1)
        return ticket

    def _resolve(self, ticket_id: str) -> None:
        waiter = self._waiting.pop(ticket_id, None)
        if waiter is not None and not waiter.future.done():
            waiter.future.set_result(self._hold(ticket_id, waiter))

    async def _release(self, ticket: _RedisTicket, usage: Usage | None) -> None:
        if ticket.released:
            return
        ticket.released = True
        self._held.pop(ticket.id, None)
        self._observer.tenant_holding(ticket.tenant.name, -1)
        used_in = usage.rate_limited_input_tokens if usage else 0
        used_out = usage.output_tokens if usage else 0
        try:
            await self._run(
                "RELEASE",
                ticket.tenant.name,
                ticket.id,
                ticket.input_tokens - used_in,
                ticket.output_tokens - used_out,
            )
        except StateUnavailable as exc:  # not raised: the lease frees the slot anyway
            _log.warning("admission release failed; the slot lease will expire: %s", exc)

    def _abandon(self, ticket_id: str, waiter: _Waiter) -> None:
        """Undo the admission of a request whose caller is gone, granted or not."""
        self._waiting.pop(ticket_id, None)
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            self._cleanup(future.result().release(None))  # a grant can beat ADMIT's reply
        else:
            needs = (waiter.input_tokens, waiter.output_tokens)
            self._cleanup(self._run("CANCEL", waiter.tenant.name, ticket_id, *needs, 1))

    def _cleanup(self, job: Any) -> None:
        """Run ``job`` to completion even though its caller is being cancelled."""
        task: asyncio.Task[None] = asyncio.ensure_future(self._quietly(job))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    @staticmethod
    async def _quietly(job: Any) -> None:
        try:
            await job
        except Exception as exc:
            _log.warning("admission clean-up failed; leases will expire: %s", exc)

    def _limited(
        self, tenant: Tenant, reason: str, wait: float, levels: list[str] | None
    ) -> RateLimited:
        items = [
            LimitLevel(LIMIT_NAMES[i], limit, float(levels[i]) if levels else 0.0)
            for i, limit in enumerate(_limits(tenant))
            if limit is not None
        ]
        return rate_limited(tenant.name, reason, wait, items, time.time())

    async def _listen(self) -> None:
        while not self._stopping():
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") == "message":
                        self._resolve(message["data"])
                    if self._stopping():
                        return
            except (RedisError, OSError) as exc:
                _log.warning("admission grant channel failed, polling until it is back: %s", exc)
            # listen() also ends when the subscription is gone; never spin on it.
            await asyncio.sleep(self._poll_max)

    async def _pump(self) -> None:
        """Poll for grants while this replica has waiters (timers, dead leases, lost pushes)."""
        delay = POLL_MIN
        while not self._stopping():
            self._wake.clear()
            if not self._waiting:
                await self._wake.wait()
                delay = POLL_MIN
                continue
            await asyncio.sleep(delay)
            ids = list(self._waiting)
            if not ids:
                continue
            try:
                result = await self._scripts["PUMP"](args=[*self._base, *ids])
            except (RedisError, OSError) as exc:
                _log.warning("admission poll failed: %s", exc)
                delay = self._poll_max
                continue
            for ticket_id in result[1:]:
                self._resolve(ticket_id)
            delay = min(delay * 2, self._poll_max)
            wake = float(result[0]) / 1000
            if wake >= 0:
                delay = min(delay, max(wake, POLL_MIN))

    async def _renew(self) -> None:
        """Extend the leases of held slots and of queued tickets, three times per lease."""
        interval = self._settings.lease_seconds / 3
        while not self._stopping():
            await asyncio.sleep(interval)
            held = list(self._held.values())
            waiting = list(self._waiting.items())
            if not held and not waiting:
                continue
            args: list[Any] = [*self._base, len(held)]
            for ticket in held:
                args += [ticket.tenant.name, ticket.id]
            for ticket_id, waiter in waiting:
                args += [waiter.tenant.name, ticket_id]
            try:
                lost = await self._scripts["RENEW"](args=args)
            except (RedisError, OSError) as exc:
                _log.warning("admission lease renewal failed: %s", exc)
                continue
            if lost:
                _log.warning("%d admission leases expired before renewal", len(lost))
