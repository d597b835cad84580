"""Redis scripts called in one turn of the event loop, sent to Redis as one pipeline.

Under load many requests admit and release in the same loop iteration. Sent one by
one, each call pays redis-py's fixed cost (a pooled connection taken and returned, a
timeout armed, a round trip awaited); sent together, one pipeline pays it once and
Redis runs the scripts back to back, in the order they were called. This is what
ioredis calls auto-pipelining. A call alone waits one loop iteration more, no longer.

Scripts run by SHA (EVALSHA): a Redis that does not know one (restarted, flushed with
SCRIPT FLUSH) gets it loaded, and the calls that met NOSCRIPT are sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from claude_proxy.state.tasks import stop_tasks

__all__ = ["ScriptBatcher"]

CLOSE_GRACE = 0.1  # seconds close() lets pipelines in flight finish
STOP_SECONDS = 0.5  # then how long it waits for them to stop

_Call = tuple[str, list[Any], "asyncio.Future[Any]"]


class ScriptBatcher:
    """Runs named Lua scripts (no keys, arguments only) in per-iteration pipelines."""

    def __init__(self, client: aioredis.Redis, scripts: Mapping[str, str]) -> None:
        self._client = client
        self._sources = dict(scripts)
        # Redis names scripts by their SHA-1.
        self._shas = {
            name: hashlib.sha1(text.encode()).hexdigest() for name, text in scripts.items()
        }
        self._queue: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, name: str, args: list[Any]) -> asyncio.Future[Any]:
        """The script's reply, or the redis-py error it raised (also for a broken connection)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._send)
        self._queue.append((name, args, future))
        return future

    def _send(self) -> None:
        queue, self._queue = self._queue, []
        task = asyncio.ensure_future(self._execute(queue))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _execute(self, queue: list[_Call]) -> None:
        try:
            replies = await self._pipeline(queue)
            unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if unknown:
                for name in {queue[i][0] for i in unknown}:
                    await self._client.script_load(self._sources[name])
                again = await self._pipeline([queue[i] for i in unknown])
                for i, reply in zip(unknown, again, strict=True):
                    replies[i] = reply
        except BaseException as exc:  # every caller learns of it; then it goes on
            for _, _, future in queue:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else _interrupted())
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), reply in zip(queue, replies, strict=True):
            if future.done():
                continue  # its caller was cancelled; the script ran all the same
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for name, args, _ in calls:
            pipe.execute_command("EVALSHA", self._shas[name], 0, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        """Let the pipelines in flight end for a moment, then stop them (their callers
        get an error): a Redis that does not answer must not hold up shutdown."""
        if self._sending:
            await asyncio.wait(self._sending, timeout=CLOSE_GRACE)
        await stop_tasks(self._sending, deadline=STOP_SECONDS)


def _interrupted() -> Exception:
    return RedisConnectionError("the Redis pipeline was interrupted")
