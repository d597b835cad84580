"""The Redis side of the Redis admission backend: its scripts, run so that they survive
Redis losing its data, one log line per outage, and a health check for readiness.

Redis may lose everything (FLUSHDB, a restart without persistence, a failover to an empty
replica). A script that finds the configuration gone fails before writing anything
(``redis_scripts.MISSING``); the store then runs SETUP again, once for all the callers
that found it gone together (SETUP is idempotent: replicas that notice at the same time
may all run it), lets the backend count its own tickets again (``recount``), and retries
the script once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from claude_proxy.admission import redis_scripts as lua
from claude_proxy.state import StateUnavailable
from claude_proxy.state.batching import ScriptBatcher
from claude_proxy.state.health import HealthCheck
from claude_proxy.state.outage import Outage
from claude_proxy.state.redis import translate_redis_errors
from claude_proxy.state.tasks import stop_tasks

__all__ = ["ScriptStore"]

_log = logging.getLogger("claude_proxy.admission")

STOP_SECONDS = 1.0


class ScriptStore:
    """The admission scripts on one Redis client, with the arguments every script takes."""

    def __init__(
        self,
        client: aioredis.Redis,
        base: list[str],
        setup_args: list[Any],
        recount: Callable[[], Awaitable[None]],
    ) -> None:
        self._client = client
        self._base = base  # ARGV[1..2]: the key prefix and the lease in ms
        self._setup_args = setup_args
        self._recount = recount
        # Calls made together go to Redis in one pipeline: under load, admits and
        # releases of many requests share one round trip. The releases of a pipeline are
        # one call, and then its admits are one call: they take the prefix and the lease
        # once, and the admits find the slots the releases freed.
        self._scripts = ScriptBatcher(
            client,
            {name: getattr(lua, name) for name in lua.__all__},
            merged={"RELEASE": len(base), "ADMIT": len(base)},
        )
        self.outage = Outage(_log, "admission's shared state (Redis)")
        self._health = HealthCheck(self._ping)
        self._restoring: asyncio.Task[None] | None = None
        # SETUP runs so far: a caller that found the state gone before the last one ended
        # need not run another.
        self._setups = 0

    async def setup(self) -> bool:
        """Write the configuration; True if Redis had none."""
        created = await self._scripts.call("SETUP", [*self._base, *self._setup_args])
        self._setups += 1
        return bool(created)

    async def raw(self, name: str, *args: Any) -> Any:
        """Run a script as it is: redis-py errors, no SETUP on a loss."""
        return await self._scripts.call(name, [*self._base, *args])

    async def script(self, name: str, *args: Any) -> Any:
        """Run a script; if Redis lost the state, set it up again and retry once.

        Raises redis-py errors: for the background loops, which log the outage themselves.
        """
        setups = self._setups
        try:
            return await self.raw(name, *args)
        except ResponseError as exc:
            if not str(exc).startswith(lua.MISSING):
                raise
        await self._set_up_again(setups)
        return await self.raw(name, *args)

    async def run(self, name: str, *args: Any) -> Any:
        """``script`` for a request: a failure is ``StateUnavailable``, and noted."""
        try:
            with translate_redis_errors("admitting a request"):
                result = await self.script(name, *args)
        except StateUnavailable as exc:
            self.failed(exc)
            raise
        if self.outage.down:
            self.answered()
        return result

    def failed(self, exc: Exception) -> None:
        """A command failed: the outage is logged (once), and readiness follows at once."""
        self.outage.failed(exc)
        self._health.observed(False)

    def answered(self) -> None:
        self.outage.ok()
        self._health.observed(True)

    async def healthy(self) -> bool:
        return await self._health.healthy()

    async def close(self) -> None:
        await self._health.close()
        await self._scripts.close()
        if self._restoring is not None:
            await stop_tasks([self._restoring], deadline=STOP_SECONDS)

    async def _set_up_again(self, seen: int) -> None:
        if self._setups != seen:
            return  # set up again since this caller's script failed
        if self._restoring is None:
            self._restoring = asyncio.create_task(self._restore(), name="admission-setup")
            self._restoring.add_done_callback(self._restored)
        # Shielded: one caller cancelled (its client left) must not stop it for the others.
        await asyncio.shield(self._restoring)

    async def _restore(self) -> None:
        if await self.setup():
            _log.warning(
                "admission state was missing from Redis (flushed, restarted empty or failed "
                "over): set up again"
            )
        await self._recount()

    def _restored(self, task: asyncio.Task[None]) -> None:
        self._restoring = None
        if not task.cancelled():
            task.exception()  # read here: its callers may all have been cancelled

    async def _ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            self.outage.failed(exc)
            raise
        self.outage.ok()
