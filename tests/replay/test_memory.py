"""What only the memory backend promises: bounded streams and bytes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from claude_proxy.replay import ReplaySettings, StreamLost, StreamNotFound
from claude_proxy.replay.memory import MemoryReplayLog
from tests.replay.helpers import read_all


async def test_past_max_streams_the_oldest_finished_stream_goes_first() -> None:
    log = MemoryReplayLog(ReplaySettings(max_streams=3))
    for name in ("a", "b", "c"):
        await log.create(name, "t")
        await log.extend(name, [b"x"])
    await log.finish("b")
    await log.create("d", "t")
    assert [await log.owner(name) for name in "abcd"] == ["t", None, "t", "t"]
    await log.create("e", "t")  # nothing finished left: the oldest goes
    assert [await log.owner(name) for name in "acde"] == [None, "t", "t", "t"]
    assert len(log) == 3


async def test_past_max_bytes_streams_are_evicted_but_never_the_one_appending() -> None:
    log = MemoryReplayLog(ReplaySettings(max_bytes=100))
    await log.create("old", "t")
    await log.extend("old", [b"o" * 40])
    await log.create("done", "t")
    await log.extend("done", [b"d" * 40])
    await log.finish("done")
    await log.create("new", "t")
    await log.extend("new", [b"n" * 40])  # 120 bytes: the finished one goes first
    assert await log.owner("done") is None and await log.owner("old") == "t"
    assert log.total_bytes == 80
    await log.extend("new", [b"n" * 40])  # 120 again: then the oldest unfinished
    assert await log.owner("old") is None
    await log.extend("new", [b"n" * 40])  # alone: it stays, over the bound
    assert log.total_bytes == 120
    with pytest.raises(StreamNotFound):
        await log.extend("old", [b"x"])


async def test_a_reader_of_an_evicted_stream_learns_it_is_lost() -> None:
    log = MemoryReplayLog(ReplaySettings(max_streams=1))
    await log.create("a", "t")
    await log.extend("a", [b"x"])
    events = log.read("a")
    assert await anext(events) == (1, b"x")
    waiting = asyncio.create_task(anext(events))
    await asyncio.sleep(0)
    await log.create("b", "t")
    with pytest.raises(StreamLost):
        await asyncio.wait_for(waiting, 1)
    assert await log.wait_abandoned("a", 5)  # nobody can resume it any more


async def test_a_waiting_reader_ends_when_an_idle_stream_expires() -> None:
    log = MemoryReplayLog(ReplaySettings(ttl_seconds=0.05))
    await log.create("a", "t")
    with pytest.raises(StreamLost):
        await asyncio.wait_for(read_all(log, "a"), 1)
    assert len(log) == 0


async def test_expired_streams_are_swept_when_streams_are_created() -> None:
    log = MemoryReplayLog(ReplaySettings(ttl_seconds=0.02))
    await log.create("a", "t")
    await log.extend("a", [b"x" * 10])
    await asyncio.sleep(0.03)
    await log.create("b", "t")
    assert len(log) == 1 and log.total_bytes == 0


async def test_close_ends_readers() -> None:
    log = MemoryReplayLog(ReplaySettings())
    await log.create("a", "t")
    reader = asyncio.create_task(read_all(log, "a"))
    await asyncio.sleep(0)
    await log.close()
    with contextlib.suppress(StreamLost):
        await asyncio.wait_for(reader, 1)
    assert reader.done()
