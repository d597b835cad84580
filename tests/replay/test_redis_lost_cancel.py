"""close() stops the Redis log's heartbeat and flusher even when redis-py loses their cancel.

See ``tests.state.swallowing``.
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from claude_proxy.replay import ReplaySettings
from claude_proxy.replay import redis as replay_redis
from claude_proxy.replay.redis import RedisReplayLog
from claude_proxy.state import StateUnavailable
from tests.replay.helpers import event
from tests.state.swallowing import Trap, finishes_within


async def _open(
    monkeypatch: pytest.MonkeyPatch, trap: Trap, url: str, prefix: str
) -> RedisReplayLog:
    monkeypatch.setattr(replay_redis, "open_redis", trap.open_redis)
    return await RedisReplayLog.open(url, ReplaySettings(key_prefix=prefix, lease_seconds=0.15))


async def _close(log: RedisReplayLog, trap: Trap, within: float) -> None:
    async with asyncio.timeout(1.0):
        await trap.sprung.wait()  # a background loop is in the trapped command
    assert await finishes_within(log.close(), within)
    assert trap.swallowed.is_set()
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not [task for task in others if not task.done()]


async def test_close_stops_a_heartbeat_that_lost_its_cancel(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str
) -> None:
    # Only the heartbeat sends PEXPIRE commands: the flusher's are in its script (whose
    # source goes to Redis too, in SCRIPT LOAD, when Redis does not have it yet).
    trap = Trap(lambda packed: b"PEXPIRE" in packed and b"redis.call" not in packed)
    log = await _open(monkeypatch, trap, redis_url, key_prefix)
    await log.create("strm_x", "acme")  # an unfinished stream, for the heartbeat to keep
    await _close(log, trap, within=1.0)


async def test_close_gives_up_on_a_flush_that_does_not_end(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str
) -> None:
    # A flush round carrying events (a new stream's round carries none).
    trap = Trap(lambda packed: b"EVALSHA" in packed and b"content_block_delta" in packed)
    log = await _open(monkeypatch, trap, redis_url, key_prefix)
    await log.create("strm_x", "acme")
    await log.extend("strm_x", [event(1)])
    async with asyncio.timeout(1.0):
        await trap.sprung.wait()  # its round is trapped
    await log.extend("strm_x", [event(2)])  # buffered for the next round
    await _close(log, trap, within=1.5)  # the drain's deadline, then a (swallowed) cancel
    with pytest.raises(StateUnavailable):  # and no flusher starts once closed
        await log.finish("strm_x")
    client = redis.Redis.from_url(redis_url)
    try:  # the flusher stopped at its lost cancel: no round after the trapped one
        assert client.xlen(f"{key_prefix}{{strm_x}}:events") == 1
    finally:
        client.close()
