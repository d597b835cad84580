"""Session locks as leases: taken by polling, renewed while held, expiring if the holder dies.

Every backend keeps a lease as a (tenant, session id) -> (token, expiry) record in its own
store and offers three atomic steps on it (:class:`LeaseBackend`); :class:`Leases` makes
the lock out of them, the same way for all. A lease rather than a lock tied to a
connection: a holder that is SIGKILLed, or cut off from the store, leaves a record that
simply runs out, and nothing has to hold a connection open for the length of a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from claude_proxy.sessions.base import SessionBusy
from claude_proxy.state import StateUnavailable
from claude_proxy.state.tasks import cancel_requested, stop_tasks

__all__ = ["LeaseBackend", "Leases"]

_log = logging.getLogger("claude_proxy.sessions")

# Polling starts fast (a lock released a moment later is the common case) and slows down
# to this, with jitter so that waiters from several replicas do not knock in lockstep.
FIRST_POLL = 0.005
MAX_POLL = 0.05
STOP_SECONDS = 0.5


class LeaseBackend(Protocol):
    """Atomic steps on lease records; ``lease`` is in seconds, measured by the store."""

    async def try_acquire(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        """Take the lease for ``token`` if nobody holds it or its holder's lease ran out."""

    async def renew(self, tenant: str, session_id: str, token: str, lease: float) -> bool:
        """Push the expiry out to ``lease`` from now; False if ``token`` lost the lease."""

    async def release(self, tenant: str, session_id: str, token: str) -> None:
        """Drop the lease if ``token`` still holds it (a lease taken over is left alone)."""


class Leases:
    """The ``lock()`` of a store, over its :class:`LeaseBackend`."""

    def __init__(self, backend: LeaseBackend) -> None:
        self._backend = backend
        self._renewers: set[asyncio.Task[None]] = set()

    def lock(
        self, tenant: str, session_id: str, *, wait: float, lease: float
    ) -> AbstractAsyncContextManager[None]:
        if lease <= 0:
            raise ValueError("a lease must be longer than 0 seconds")
        return self._hold(tenant, session_id, max(wait, 0.0), lease)

    @contextlib.asynccontextmanager
    async def _hold(
        self, tenant: str, session_id: str, wait: float, lease: float
    ) -> AsyncIterator[None]:
        token = secrets.token_hex(16)
        await self._acquire(tenant, session_id, token, wait, lease)
        renewer = asyncio.create_task(
            self._renew(tenant, session_id, token, lease), name="session-lease-renewer"
        )
        self._renewers.add(renewer)
        renewer.add_done_callback(self._renewers.discard)
        try:
            yield
        finally:
            await stop_tasks([renewer], deadline=STOP_SECONDS)
            await self._release(tenant, session_id, token)

    async def _acquire(
        self, tenant: str, session_id: str, token: str, wait: float, lease: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        delay = FIRST_POLL
        try:
            while not await self._backend.try_acquire(tenant, session_id, token, lease):
                left = deadline - loop.time()
                if left <= 0:
                    raise SessionBusy(session_id, wait)
                await asyncio.sleep(min(random.uniform(delay / 2, delay), left))
                delay = min(delay * 2, MAX_POLL)
        except (asyncio.CancelledError, StateUnavailable):
            # The store may have granted the lease just as the answer was lost: give it
            # back now rather than leave the session locked until the lease runs out.
            with contextlib.suppress(StateUnavailable):
                await asyncio.shield(self._backend.release(tenant, session_id, token))
            raise

    async def _renew(self, tenant: str, session_id: str, token: str, lease: float) -> None:
        """Renew at a third of the lease, so that two renewals may fail before it runs out."""
        while not cancel_requested():  # a cancel lost in redis-py (see state.tasks) ends it too
            await asyncio.sleep(lease / 3)
            try:
                held = await self._backend.renew(tenant, session_id, token, lease)
            except StateUnavailable as exc:
                _log.warning("could not renew the lock of a session (%s); retrying", exc)
                continue
            if not held:
                _log.warning(
                    "the lock of session %r ran out while held (the event loop or the "
                    "store stalled for longer than its lease)",
                    session_id,
                )
                return

    async def _release(self, tenant: str, session_id: str, token: str) -> None:
        try:
            await asyncio.shield(self._backend.release(tenant, session_id, token))
        except StateUnavailable as exc:  # the lease runs out on its own
            _log.warning("could not release the lock of a session (%s)", exc)

    async def close(self) -> None:
        """Stop renewing the locks still held: their leases run out on their own."""
        await stop_tasks(self._renewers, deadline=STOP_SECONDS)
