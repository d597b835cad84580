"""Calls made while a group is in flight travel together in the next group.

A store's writes each pay a fixed cost that can be shared: a flush to disk (SQLite's
commit), a network round trip (a Redis pipeline), a hop to a database thread. Under
concurrency, the writes that arrive while one group runs are queued and sent as the next
group, so that cost is paid once per group instead of once per write, while a lone write
still goes at once (no timer, no added latency).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["Coalescer", "Outcome"]

_Item = TypeVar("_Item")

# What one item came to: (False, its value) or (True, the exception to raise to its caller).
Outcome = tuple[bool, Any]


class Coalescer(Generic[_Item]):
    """Hands queued items to ``run_group`` in groups of at most ``max_group``.

    ``run_group`` returns one :data:`Outcome` per item, in order; if it raises, every
    item of the group gets that exception. An item submitted runs even if its caller is
    cancelled meanwhile (as a shielded call would): a lock's release, say, must not be lost
    to a client leaving.
    """

    def __init__(
        self,
        run_group: Callable[[list[_Item]], Awaitable[list[Outcome]]],
        *,
        max_group: int,
        name: str,
    ) -> None:
        self._run_group = run_group
        self._max_group = max_group
        self._name = name
        self._queue: list[tuple[_Item, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: _Item) -> Any:
        """The value ``run_group`` gave ``item``, or the exception it gave, raised."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name=self._name)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_consume)
            raise

    async def drained(self) -> None:
        """Return when every item submitted so far has its outcome."""
        while self._drainer is not None:
            await asyncio.shield(self._drainer)

    async def _drain(self) -> None:
        try:
            while self._queue:
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
                try:
                    outcomes = await self._run_group([item for item, _ in group])
                except asyncio.CancelledError:
                    # The loop is going away: nobody is left to wait for the group.
                    for _, future in group:
                        future.cancel()
                    raise
                except Exception as exc:
                    outcomes = [(True, exc)] * len(group)
                for (_, future), (failed, value) in zip(group, outcomes, strict=True):
                    if future.done():
                        continue
                    if failed:
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        finally:
            self._drainer = None


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a cancelled caller's outcome as seen (nobody is left to raise it to)."""
    if not future.cancelled():
        future.exception()
