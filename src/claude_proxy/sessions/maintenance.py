"""The background task that deletes expired sessions from stores without native expiry.

SQLite and PostgreSQL hide an expired session at once (every query compares its expiry
with the clock), but only a delete gives the space back: one task per store does it now
and then, off the request path. Several replicas purging the same rows is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from claude_proxy.state import StateUnavailable
from claude_proxy.state.outage import Outage
from claude_proxy.state.tasks import cancel_requested, stop_tasks

__all__ = ["Purger"]

PURGE_SECONDS = 60.0
STOP_SECONDS = 1.0


class Purger:
    """Calls ``purge`` every ``interval`` seconds until closed; failures are logged once
    per outage, not per round."""

    def __init__(
        self,
        purge: Callable[[], Awaitable[None]],
        log: logging.Logger,
        what: str,
        *,
        interval: float = PURGE_SECONDS,
    ) -> None:
        self._purge = purge
        self._interval = interval
        self._outage = Outage(log, what)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="session-purger")

    async def _run(self) -> None:
        while not cancel_requested():
            await asyncio.sleep(self._interval)
            try:
                await self._purge()
            except StateUnavailable as exc:
                self._outage.failed(exc)
            else:
                self._outage.ok()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_tasks([task], deadline=STOP_SECONDS)
