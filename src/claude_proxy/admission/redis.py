"""Admission shared by every replica through Redis: the same rules as memory, made atomic.

Every decision runs in one Lua script (see ``redis_scripts``), so limits hold across
replicas exactly. Slots are leases renewed by a background task; a replica that dies
stops renewing and its slots expire after ``lease_seconds``. A waiting replica learns of
its grant from the ``grants`` channel, and polls (20 ms backing off to 0.5 s) in case a
message was lost or a dead replica's lease has to run out. A poll also grants what only
time makes eligible: a token-blocked head, or a waiter held back by a spare slot kept for
another tenant (see ``memory``) whose reservation lapsed; PUMP says when that will be.

Redis may lose everything: then the replica that notices first runs SETUP again (see
``redis_store``) and renews at once, which counts its held slots and queues its waiters
again. SETUP tells the other replicas on the grants channel, and they renew at once too;
a replica that misses the notice renews within a third of a lease anyway. While Redis
cannot be reached, requests fail with ``StateUnavailable`` (admission fails closed; see
``fallback`` for failing open), the background loops retry with a backoff, and the
outage is logged when it starts and when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Iterable
from typing import Any, Self

from redis import asyncio as aioredis
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
from claude_proxy.admission.redis_store import ScriptStore
from claude_proxy.errors import RateLimited
from claude_proxy.state import StateUnavailable
from claude_proxy.state.redis import close_within, open_redis, translate_redis_errors
from claude_proxy.state.tasks import cancel_requested, stop_tasks
from claude_proxy.tenancy import AdmissionSettings, Tenant

__all__ = ["RedisAdmission"]

_log = logging.getLogger("claude_proxy.admission")

POLL_MIN = 0.02
POLL_MAX = 0.5
LISTEN_RETRY_MAX = 2.0  # the grant channel's longest wait between reconnects (polls go on)
STOP_SECONDS = 1.0  # close() waits this long for the background tasks, then gives up
# A release or an upstream status waits this long for Redis, then goes on in the background:
# both come after an answer, which must not wait on a stalled Redis (a socket timeout each).
SETTLE_SECONDS = 0.25
# How long a replica trusts that the shared window is at its maximum (see on_upstream_status).
FULL_WINDOW_RECHECK = 1.0


class _QueueTimeout(Exception):
    """Set on a waiter's future when its queue_timeout passes."""


class _Waiter:
    __slots__ = ("future", "input_tokens", "output_tokens", "queued", "tenant")

    def __init__(self, tenant: Tenant, input_tokens: int, output_tokens: int) -> None:
        self.tenant = tenant
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        # In the Redis queue (ADMIT said so): RENEW and PUMP queue it again if Redis lost it.
        self.queued = False
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
        base = [settings.key_prefix, str(max(1, int(settings.lease_seconds * 1000)))]
        setup = _setup_args(settings, self._tenants.values())
        self._store = ScriptStore(client, base, setup, self._recount)
        self._poll_max = min(POLL_MAX, settings.lease_seconds / 4)
        self._waiting: dict[str, _Waiter] = {}
        self._held: dict[str, _RedisTicket] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._renew_now = asyncio.Event()
        self._window_full_until = 0.0  # loop time until which successes are not sent

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
        with translate_redis_errors("configuring admission"):
            await self._store.setup()
            await self._pubsub.subscribe(self._settings.key_prefix + "grants")
        jobs = {"listen": self._listen(), "pump": self._pump(), "renew": self._renew()}
        for name, job in jobs.items():
            self._tasks.append(asyncio.create_task(job, name=f"admission-{name}"))

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
            code, wait, levels = await self._store.run(
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
        waiter.queued = True
        self._wake.set()
        timer = asyncio.get_running_loop().call_later(timeout, _expire, waiter.future)
        self._observer.tenant_waiting(tenant.name, 1)
        try:
            return await waiter.future
        except _QueueTimeout:
            self._waiting.pop(ticket_id, None)
            granted, wait, levels = await self._store.run(
                "CANCEL", tenant.name, ticket_id, *needs[1:], 0
            )
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
        # Not raised: it comes after the answer, which must reach the client whatever
        # Redis does, and one signal less to the window costs nothing.
        loop = asyncio.get_running_loop()
        if 200 <= status < 400 and loop.time() < self._window_full_until:
            # A success only moves a window below its maximum: while the last answer said
            # it is at its maximum, the round trip would change nothing. Checked again
            # after FULL_WINDOW_RECHECK, so a cut made by another replica is seen soon.
            return
        await self._settle(self._status(status))

    async def _status(self, status: int) -> None:
        window = await self._store.run("STATUS", status)
        full = int(window) >= self._settings.upstream_max_concurrent
        loop = asyncio.get_running_loop()
        self._window_full_until = loop.time() + FULL_WINDOW_RECHECK if full else 0.0

    async def healthy(self) -> bool:
        """Whether Redis answers a PING (asked at most once a second, one at a time)."""
        return await self._store.healthy()

    async def snapshot(self) -> AdmissionSnapshot:
        names = list(self._tenants)
        data = await self._store.run("SNAPSHOT", *names)
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
        await self._store.close()
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
        # Not raised: the slot's lease runs out anyway, and a slot Redis has lost is no
        # slot to release.
        await self._settle(
            self._store.run(
                "RELEASE",
                ticket.tenant.name,
                ticket.id,
                ticket.input_tokens - used_in,
                ticket.output_tokens - used_out,
            )
        )

    def _abandon(self, ticket_id: str, waiter: _Waiter) -> None:
        """Undo the admission of a request whose caller is gone, granted or not."""
        self._waiting.pop(ticket_id, None)
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            self._cleanup(future.result().release(None))  # a grant can beat ADMIT's reply
        else:
            needs = (waiter.input_tokens, waiter.output_tokens)
            self._cleanup(self._store.run("CANCEL", waiter.tenant.name, ticket_id, *needs, 1))

    def _cleanup(self, job: Any) -> asyncio.Task[None]:
        """Run ``job`` to completion even though its caller is being cancelled."""
        task: asyncio.Task[None] = asyncio.ensure_future(self._quietly(job))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return task

    async def _settle(self, job: Any) -> None:
        """Run ``job`` to completion, waiting for it at most ``SETTLE_SECONDS``."""
        await asyncio.wait([self._cleanup(job)], timeout=SETTLE_SECONDS)

    @staticmethod
    async def _quietly(job: Any) -> None:
        # Nobody awaits this task: an exception left in it would only surface as "Task
        # exception was never retrieved".
        try:
            await job
        except StateUnavailable:
            pass  # the outage, logged once by the store; the leases expire anyway
        except Exception:
            _log.exception("admission clean-up failed; leases will expire")

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
        """Resolve this replica's waiters granted by others; reconnect after a failure."""
        while not self._stopping():
            try:
                async for message in self._pubsub.listen():
                    data = message.get("data") if message.get("type") == "message" else None
                    if data == lua.SETUP_NOTICE:
                        self._renew_now.set()  # count this replica's tickets again now
                    elif data is not None:
                        self._resolve(data)
                    if self._stopping():
                        return
            except (RedisError, OSError) as exc:
                # redis-py subscribes again on its next connection; polls cover the gap.
                self._store.failed(exc)
            # listen() also ends when the subscription is gone; never spin on it.
            if self._store.outage.down:
                await asyncio.sleep(self._store.outage.backoff(POLL_MIN, LISTEN_RETRY_MAX))
            else:
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
            if not self._waiting:
                continue
            queued = self._queued()
            admitting = [ticket_id for ticket_id, w in self._waiting.items() if not w.queued]
            try:
                result = await self._store.script("PUMP", len(queued) // 4, *queued, *admitting)
            except (RedisError, OSError) as exc:
                self._store.failed(exc)
                delay = self._store.outage.backoff(POLL_MIN, self._poll_max)
                continue
            if self._store.outage.down:
                self._store.answered()
            for ticket_id in result[1:]:
                self._resolve(ticket_id)
            delay = min(delay * 2, self._poll_max)
            wake = float(result[0]) / 1000
            if wake >= 0:
                delay = min(delay, max(wake, POLL_MIN))

    async def _renew(self) -> None:
        """Extend the leases of held slots and queued tickets, three times per lease, and
        at once when another replica set the state up again."""
        interval = self._settings.lease_seconds / 3
        while not self._stopping():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._renew_now.wait()
            self._renew_now.clear()
            try:
                await self._renew_once()
            except (RedisError, OSError) as exc:
                self._store.failed(exc)
                continue
            if self._store.outage.down:
                self._store.answered()

    def _queued(self) -> list[Any]:
        """(tenant, id, input, output) of each waiter in the Redis queue, as script args."""
        args: list[Any] = []
        for ticket_id, waiter in self._waiting.items():
            if waiter.queued:
                args += [waiter.tenant.name, ticket_id, waiter.input_tokens, waiter.output_tokens]
        return args

    async def _recount(self) -> None:
        """After SETUP, within the store's retry: renew now, without a second SETUP."""
        await self._renew_once(restoring=True)

    async def _renew_once(self, *, restoring: bool = False) -> None:
        """Renew; what Redis lost of this replica's tickets is counted and queued again."""
        held = list(self._held.values())
        queued = self._queued()
        if not held and not queued:
            return
        args: list[Any] = [len(held)]
        for ticket in held:
            args += [ticket.tenant.name, ticket.id]
        args += queued
        if restoring:
            lost = await self._store.raw("RENEW", *args)
        else:
            lost = await self._store.script("RENEW", *args)
        if not lost:
            return
        _log.warning(
            "%d held admission slots were gone from Redis (lease expired, or state lost); "
            "counted again",
            len(lost),
        )
        tickets = {ticket.id: ticket for ticket in held}
        for ticket_id in lost:
            ticket = tickets[ticket_id]
            if ticket.released:  # its RELEASE reached Redis first: it is no slot any more
                await self._store.raw("RELEASE", ticket.tenant.name, ticket.id, 0, 0)


def _setup_args(settings: AdmissionSettings, tenants: Iterable[Tenant]) -> list[Any]:
    """SETUP's arguments after P and the lease: the tenants, then the window."""
    args: list[Any] = []
    for tenant in tenants:
        maxc = tenant.settings.max_concurrent
        weight = tenant.settings.weight
        args += [tenant.name, -1 if maxc is None else maxc, repr(1.0 / weight), repr(weight)]
        args += [-1 if limit is None else limit for limit in _limits(tenant)]
    return [
        *args,
        settings.upstream_max_concurrent,
        settings.window_min,
        repr(settings.decrease_factor),
        settings.increase_step,
        int(settings.decrease_cooldown * 1000),
        int(settings.active_seconds * 1000),
    ]
