"""Redis scripts called in one turn of the event loop, sent to Redis as one pipeline.

Under load many requests admit and release in the same loop iteration. Sent one by
one, each call pays redis-py's fixed cost (a pooled connection taken and returned, a
timeout armed, a round trip awaited); sent together, one pipeline pays it once. This is
what ioredis calls auto-pipelining. A call alone waits one loop iteration, no longer.
Pipelines of different turns go out at once, each on its own connection: one stalled
connection holds up its own calls only.

Scripts run by SHA (EVALSHA): a Redis that does not know one (restarted, flushed with
SCRIPT FLUSH) gets it loaded, and the calls that met NOSCRIPT are sent again.

A script named in ``merged`` takes its shared leading arguments once, then any number of
argument groups, and replies with a list (one item per group). All its calls in a
pipeline become one call: one command to pack and one reply to parse instead of one
each, and one run of the script's shared work (admission's RELEASE dispatches the queues
once for all the slots freed together). Merged calls go first, scripts in the order
``merged`` names them, each script's groups in call order; the other calls follow in
call order. So within a turn a merged call may run before calls made earlier, and the
order between scripts is not the call order: callers must not depend on it. Admission
names RELEASE before ADMIT (the slots freed in a turn are free for the requests admitted
in it), and CANCEL, not merged, still follows the ADMIT it undoes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from claude_proxy.state.tasks import stop_tasks

__all__ = ["ScriptBatcher"]

CLOSE_GRACE = 0.1  # seconds close() lets pipelines in flight finish
STOP_SECONDS = 0.5  # then how long it waits for them to stop

_Call = tuple[str, list[Any], "asyncio.Future[Any]"]


class _Command:
    """One EVALSHA of a pipeline: a call, or consecutive calls of a merged script."""

    __slots__ = ("args", "futures", "merged", "name")

    def __init__(self, name: str, args: list[Any], future: asyncio.Future[Any], merged: bool):
        self.name = name
        self.args = list(args) if merged else args
        self.futures = [future]
        self.merged = merged

    def settle(self, reply: Any) -> None:
        if isinstance(reply, Exception):  # every caller of a merged call learns of it
            for future in self.futures:
                if not future.done():
                    future.set_exception(reply)
            return
        replies = reply if self.merged else [reply]
        if not isinstance(replies, list) or len(replies) != len(self.futures):
            self.settle(ResponseError(f"{self.name} answered {reply!r} for {len(self.futures)}"))
            return
        for future, one in zip(self.futures, replies, strict=True):
            if not future.done():  # else its caller was cancelled; it ran all the same
                future.set_result(one)


class ScriptBatcher:
    """Runs named Lua scripts (no keys, arguments only) in per-iteration pipelines."""

    def __init__(
        self,
        client: aioredis.Redis,
        scripts: Mapping[str, str],
        merged: Mapping[str, int] | None = None,
    ) -> None:
        """``merged``: script name -> how many leading arguments its calls share, in the
        order the merged calls are sent."""
        self._client = client
        self._merged = dict(merged or {})
        self._sources = dict(scripts)
        # Redis names scripts by their SHA-1.
        self._shas = {
            name: hashlib.sha1(text.encode()).hexdigest() for name, text in scripts.items()
        }
        self._queue: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, name: str, args: list[Any]) -> asyncio.Future[Any]:
        """The script's reply, or the redis-py error it raised (also for a broken connection)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._queue:
            # The task's first step runs in the next loop iteration, and takes every call
            # made until then.
            task = asyncio.ensure_future(self._execute())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        self._queue.append((name, args, future))
        return future

    async def _execute(self) -> None:
        queue, self._queue = self._queue, []
        commands = self._commands(queue)
        try:
            replies = await self._pipeline(commands)
            unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if unknown:
                for name in {commands[i].name for i in unknown}:
                    await self._client.script_load(self._sources[name])
                again = await self._pipeline([commands[i] for i in unknown])
                for i, reply in zip(unknown, again, strict=True):
                    replies[i] = reply
        except BaseException as exc:  # every caller learns of it; then it goes on
            for _, _, future in queue:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else _interrupted())
            if not isinstance(exc, Exception):
                raise
            return
        for command, reply in zip(commands, replies, strict=True):
            command.settle(reply)

    def _commands(self, queue: list[_Call]) -> list[_Command]:
        merged: dict[str, _Command] = {}
        others: list[_Command] = []
        for name, args, future in queue:
            shared = self._merged.get(name)
            if shared is None:
                others.append(_Command(name, args, future, merged=False))
            elif (command := merged.get(name)) is None:
                merged[name] = _Command(name, args, future, merged=True)
            else:
                command.args += args[shared:]
                command.futures.append(future)
        return [merged[name] for name in self._merged if name in merged] + others

    async def _pipeline(self, commands: list[_Command]) -> list[Any]:
        if len(commands) == 1:  # a pipeline of one costs redis-py more than the command
            command = commands[0]
            run = self._client.execute_command  # untyped in redis-py's asyncio client
            try:
                sha = self._shas[command.name]
                return [await run("EVALSHA", sha, 0, *command.args)]  # type: ignore[no-untyped-call]
            except ResponseError as exc:  # a reply, as the pipeline gives it (NOSCRIPT too)
                return [exc]
        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command("EVALSHA", self._shas[command.name], 0, *command.args)
        return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        """Let the pipelines in flight end for a moment, then stop them (their callers
        get an error): a Redis that does not answer must not hold up shutdown."""
        if self._sending:
            await asyncio.wait(self._sending, timeout=CLOSE_GRACE)
        await stop_tasks(self._sending, deadline=STOP_SECONDS)
        # Calls whose task was stopped before it took them.
        queue, self._queue = self._queue, []
        for _, _, future in queue:
            if not future.done():
                future.set_exception(_interrupted())


def _interrupted() -> Exception:
    return RedisConnectionError("the Redis pipeline was interrupted")
