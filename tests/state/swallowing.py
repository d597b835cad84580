"""A redis-py client that loses a cancellation the way redis-py does on Python 3.11.

redis-py sends each command under ``asyncio.wait_for``, which on 3.11 drops a cancel that
arrives as the send completes (CPython gh-86296): the task gets the command's reply, and
its ``cancelling()`` stays set. Real timing makes that a lottery (about one cancel in three
near a PING); this client makes it certain. The first command ``Trap.matches`` is sent,
then held until its task is cancelled; the cancel is swallowed there, and the command
completes and returns its reply as if nothing had happened.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from redis import asyncio as aioredis


class Trap:
    """Which command swallows a cancel, and events to follow it."""

    def __init__(self, matches: Callable[[bytes], bool]) -> None:
        self.matches = matches
        self.armed = True
        self.sprung = asyncio.Event()  # the trapped command is waiting for its cancel
        self.swallowed = asyncio.Event()

    @classmethod
    def script(cls, source: str) -> Trap:
        """Trap the first run of the Lua script ``source`` (EVALSHA names it by its SHA1)."""
        sha = hashlib.sha1(source.encode()).hexdigest().encode()
        return cls(lambda packed: sha in packed)

    def open_redis(self, url: str, **_: float) -> aioredis.Redis:
        """A client like ``claude_proxy.state.redis.open_redis``'s, with this trap set."""
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            connection_class=_SwallowingConnection,
            trap=self,
            decode_responses=True,
            socket_timeout=5.0,
        )
        return aioredis.Redis.from_pool(pool)

    def take(self, packed: bytes) -> bool:
        if not self.armed or not self.matches(packed):
            return False
        self.armed = False
        return True


class _SwallowingConnection(aioredis.Connection):
    def __init__(self, *, trap: Trap, **options: Any) -> None:
        super().__init__(**options)
        self._trap = trap

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        chunks = [command.encode()] if isinstance(command, str) else command
        chunks = [chunks] if isinstance(chunks, bytes) else list(chunks)
        trapped = self._trap.take(b"".join(chunks))
        await super().send_packed_command(chunks, check_health)
        if not trapped:
            return
        self._trap.sprung.set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            # As wait_for on 3.11 when its inner future is already done: the cancel is
            # dropped without uncancel(), so the task still reports cancelling() == 1.
            self._trap.swallowed.set()


async def finishes_within(job: Coroutine[Any, Any, None], seconds: float) -> bool:
    """Whether ``job`` ends within ``seconds``; a job that does not is cancelled.

    Not ``asyncio.timeout``: its cancel would reach the tasks ``job`` awaits and stop them,
    hiding the very hang under test.
    """
    task = asyncio.ensure_future(job)
    await asyncio.wait([task], timeout=seconds)
    if task.done():
        task.result()
        return True
    task.cancel()
    await asyncio.wait([task], timeout=1.0)
    return False
