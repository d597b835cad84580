"""What only the Redis backend promises: replicas share streams, and dead writers are noticed."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from claude_proxy.replay import (
    ReplayLog,
    ReplaySettings,
    StreamLost,
    StreamNotFound,
    new_stream_id,
    open_replay_log,
)
from claude_proxy.replay.redis import RedisReplayLog
from claude_proxy.state import StateUnavailable
from tests.replay.helpers import event, read_all


async def _replica(url: str, prefix: str, **fields: float) -> ReplayLog:
    return await open_replay_log(
        url, ReplaySettings.model_validate({"key_prefix": prefix, **fields})
    )


async def test_one_replica_writes_and_another_reads_live(redis_url: str, key_prefix: str) -> None:
    writer = await _replica(redis_url, key_prefix)
    reader = await _replica(redis_url, key_prefix, poll_seconds=0.01)
    try:
        await writer.create("strm_x", "acme")
        for seq in range(1, 51):
            await writer.extend("strm_x", [event(seq)])
        assert await reader.owner("strm_x") == "acme"
        reading = asyncio.create_task(read_all(reader, "strm_x", 20))
        assert await writer.wait_for_reader("strm_x", 2.0)  # seen across replicas
        for seq in range(51, 501):
            await writer.extend("strm_x", [event(seq)])
            if seq % 50 == 0:
                await asyncio.sleep(0.002)
        await writer.finish("strm_x")
        got = await asyncio.wait_for(reading, 5)
        assert [seq for seq, _ in got] == list(range(21, 501))
        assert all(data == event(seq) for seq, data in got)
    finally:
        await writer.close()
        await reader.close()


async def test_a_replica_asked_for_a_young_stream_before_its_keys_landed_waits_for_them(
    redis_url: str, key_prefix: str
) -> None:
    """``begin`` hands out the id at once; a resume that reaches another replica before
    the writer's first round finds the stream all the same."""
    writer = await _replica(redis_url, key_prefix)
    reader = await _replica(redis_url, key_prefix, poll_seconds=0.01)
    try:
        stream_id = new_stream_id()
        owner = asyncio.create_task(reader.owner(stream_id))
        reading = asyncio.create_task(read_all(reader, stream_id))
        await asyncio.sleep(0.1)  # both asked, and found nothing yet
        assert not owner.done() and not reading.done()
        writer.begin(stream_id, "acme")
        await writer.extend(stream_id, [event(1), event(2)])
        await writer.finish(stream_id)
        assert await asyncio.wait_for(owner, 5) == "acme"
        assert await asyncio.wait_for(reading, 5) == [(1, event(1)), (2, event(2))]
    finally:
        await writer.close()
        await reader.close()


async def test_an_unknown_stream_made_long_ago_is_not_waited_for(
    redis_url: str, key_prefix: str
) -> None:
    log = await _replica(redis_url, key_prefix)
    try:
        stream_id = new_stream_id(time.time() - 60)
        started = time.monotonic()
        assert await log.owner(stream_id) is None
        with pytest.raises(StreamNotFound):
            await read_all(log, stream_id)
        assert time.monotonic() - started < 1.0  # the young wait is 6 s
    finally:
        await log.close()


async def test_a_reader_learns_when_the_writing_replica_dies(
    redis_url: str, key_prefix: str
) -> None:
    writer = await _replica(redis_url, key_prefix, lease_seconds=0.3)
    reader = await _replica(redis_url, key_prefix, block_seconds=0.1)
    try:
        await writer.create("strm_x", "acme")
        await writer.extend("strm_x", [event(1)])
        await writer.close()  # no finish: as after SIGKILL, its lease runs out
        reading = asyncio.create_task(read_all(reader, "strm_x"))
        with pytest.raises(StreamLost):
            await asyncio.wait_for(reading, 3)
    finally:
        await reader.close()


async def test_keys_carry_the_ttl_and_the_writer_lease_is_dropped_on_finish(
    redis_url: str, key_prefix: str
) -> None:
    log = await _replica(redis_url, key_prefix, ttl_seconds=60)
    try:
        await log.create("strm_x", "acme")
        await log.extend("strm_x", [event(1)])
        await log.finish("strm_x")
    finally:
        await log.close()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = sorted(client.scan_iter(match=key_prefix + "*"))
        assert keys == [key_prefix + "{strm_x}:events", key_prefix + "{strm_x}:meta"]
        assert all(0 < client.pttl(key) <= 60_000 for key in keys)
        assert client.xrange(keys[0]) == [("0-1", {"d": event(1).decode()}), ("0-2", {"e": "1"})]
    finally:
        client.close()


async def test_an_unreachable_redis_is_state_unavailable() -> None:
    with pytest.raises(StateUnavailable):
        await RedisReplayLog.open("redis://127.0.0.1:1/0", ReplaySettings())


async def test_a_burst_of_events_is_one_redis_entry_not_one_per_event(
    redis_url: str, key_prefix: str
) -> None:
    log = await _replica(redis_url, key_prefix)
    try:
        await log.create("strm_x", "acme")
        assert await log.extend("strm_x", [event(seq) for seq in range(1, 501)]) == 1
        await log.finish("strm_x")
    finally:
        await log.close()
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(key_prefix + "{strm_x}:events")
        assert [entry_id for entry_id, _ in entries] == [b"0-500", b"0-501"]  # batch, finish
    finally:
        client.close()


async def test_writes_go_on_after_redis_forgets_the_write_script(
    redis_url: str, key_prefix: str
) -> None:
    """SCRIPT FLUSH (or a restart) mid-stream: the flusher's script is loaded again, and
    no event is lost or doubled."""
    log = await _replica(redis_url, key_prefix)
    try:
        await log.create("strm_flushed", "acme")
        await log.extend("strm_flushed", [event(1), event(2)])
        client = redis.Redis.from_url(redis_url)
        try:
            async with asyncio.timeout(2):  # the first round has landed
                while not client.xlen(f"{key_prefix}{{strm_flushed}}:events"):
                    await asyncio.sleep(0.001)
            client.script_flush()
        finally:
            client.close()
        await log.extend("strm_flushed", [b"".join([event(3), event(4), event(5)])], [3])
        await log.finish("strm_flushed")
        got = await read_all(log, "strm_flushed")
        assert got == [(seq, event(seq)) for seq in range(1, 6)]
    finally:
        await log.close()
