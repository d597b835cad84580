"""The LRU cache in front of a store: loads served from memory, conflicts never hidden."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from claude_proxy.sessions import CachedStore, Session, SessionConflict, SessionSettings
from claude_proxy.sessions.memory import MemoryStore
from claude_proxy.state import StateUnavailable

T = "tenant-a"


def turn(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


class Counting(MemoryStore):
    """A memory store that counts its loads, can fail its appends, and can hold a load
    after it has read (to overlap a write)."""

    def __init__(self) -> None:
        super().__init__(SessionSettings(url="memory://"))
        self.loads = 0
        self.failing = False
        self.gate: asyncio.Event | None = None

    async def load(self, tenant: str, session_id: str) -> Session | None:
        self.loads += 1
        session = await super().load(tenant, session_id)
        if self.gate is not None:
            await self.gate.wait()
        return session

    async def append(self, *args: Any, **kwargs: Any) -> int:
        if self.failing:
            raise StateUnavailable("the store is down")
        return await super().append(*args, **kwargs)


@pytest.fixture
async def inner() -> Counting:
    return Counting()


async def test_loads_are_served_from_the_cache(inner: Counting) -> None:
    cache = CachedStore(inner, size=10, ttl=60)
    version = await cache.append(T, "s1", [turn("一")], expected_version=0, system="s")
    await cache.append(T, "s1", [turn("二")], expected_version=version)
    for _ in range(3):
        session = await cache.load(T, "s1")
        assert session is not None and session.messages == [turn("一"), turn("二")]
        assert (session.version, session.system) == (2, "s")
    assert inner.loads == 0  # the appends kept the cached copy current

    await inner.append(T, "s2", [turn("x")], expected_version=0)
    for _ in range(3):
        assert await cache.load(T, "s2") is not None
    assert inner.loads == 1


async def test_each_load_is_a_copy(inner: Counting) -> None:
    cache = CachedStore(inner, size=10, ttl=60)
    message = {"role": "user", "content": [{"type": "text", "text": "a"}]}
    await cache.append(T, "s1", [message], expected_version=0)
    session = await cache.load(T, "s1")
    assert session is not None
    session.messages[0]["content"][0]["text"] = "changed"
    again = await cache.load(T, "s1")
    assert again is not None and again.messages[0]["content"][0]["text"] == "a"


async def test_a_conflict_is_never_hidden_and_drops_the_stale_copy(inner: Counting) -> None:
    mine = CachedStore(inner, size=10, ttl=60)
    theirs = CachedStore(inner, size=10, ttl=60)  # another replica, with its own cache
    await inner.append(T, "s1", [turn("a")], expected_version=0)
    stale = await mine.load(T, "s1")
    assert stale is not None and stale.version == 1
    await theirs.append(T, "s1", [turn("b")], expected_version=1)

    with pytest.raises(SessionConflict):
        await mine.append(T, "s1", [turn("lost")], expected_version=stale.version)
    loads = inner.loads
    fresh = await mine.load(T, "s1")
    assert inner.loads == loads + 1
    assert fresh is not None and fresh.messages == [turn("a"), turn("b")]
    with pytest.raises(SessionConflict):
        await mine.replace(T, "s1", [turn("summary")], expected_version=1)


async def test_a_failed_write_drops_the_copy(inner: Counting) -> None:
    cache = CachedStore(inner, size=10, ttl=60)
    await cache.append(T, "s1", [turn("a")], expected_version=0)
    inner.failing = True
    with pytest.raises(StateUnavailable):
        await cache.append(T, "s1", [turn("b")], expected_version=1)
    inner.failing = False
    assert await cache.load(T, "s1") is not None
    assert inner.loads == 1


async def test_a_load_overlapping_a_write_is_not_cached(inner: Counting) -> None:
    cache = CachedStore(inner, size=10, ttl=60)
    await inner.append(T, "s1", [turn("a")], expected_version=0)
    inner.gate = asyncio.Event()
    reading = asyncio.create_task(cache.load(T, "s1"))  # reads version 1, then waits
    await asyncio.sleep(0.01)
    inner.gate.set()
    inner.gate = None
    await cache.append(T, "s1", [turn("b")], expected_version=1)
    old = await reading
    assert old is not None and old.version == 1
    new = await cache.load(T, "s1")
    assert new is not None and new.version == 2


async def test_delete_and_replace_go_through(inner: Counting) -> None:
    cache = CachedStore(inner, size=10, ttl=60)
    version = await cache.append(T, "s1", [turn("a"), turn("b")], expected_version=0)
    assert await cache.load(T, "s1") is not None
    version = await cache.replace(T, "s1", [turn("summary")], expected_version=version)
    replaced = await cache.load(T, "s1")
    assert replaced is not None and (replaced.messages, replaced.version) == ([turn("summary")], 2)
    assert await cache.delete(T, "s1") is True
    assert await cache.load(T, "s1") is None
    assert inner.loads == 1


async def test_the_least_recently_used_session_is_evicted(inner: Counting) -> None:
    cache = CachedStore(inner, size=2, ttl=60)
    for session_id in ("a", "b", "c"):
        await inner.append(T, session_id, [turn(session_id)], expected_version=0)
    await cache.load(T, "a")
    await cache.load(T, "b")
    await cache.load(T, "a")  # "b" is now the least recently used
    await cache.load(T, "c")
    assert inner.loads == 3
    await cache.load(T, "a")
    assert inner.loads == 3
    await cache.load(T, "b")
    assert inner.loads == 4


async def test_a_copy_is_read_again_after_the_cache_ttl(inner: Counting) -> None:
    cache = CachedStore(inner, size=10, ttl=0.05)
    await inner.append(T, "s1", [turn("a")], expected_version=0)
    await cache.load(T, "s1")
    await cache.load(T, "s1")
    assert inner.loads == 1
    await asyncio.sleep(0.08)
    await cache.load(T, "s1")
    assert inner.loads == 2


async def test_a_copy_never_outlives_its_session(inner: Counting) -> None:
    cache = CachedStore(inner, size=10, ttl=60, retention=0.1)
    await cache.append(T, "kept", [turn("a")], expected_version=0, ttl_seconds=30)
    await cache.append(T, "short", [turn("a")], expected_version=0, ttl_seconds=0.1)
    await inner.append(T, "default", [turn("a")], expected_version=0, ttl_seconds=0.1)
    assert await cache.load(T, "default") is not None
    await asyncio.sleep(0.15)
    assert await cache.load(T, "short") is None
    assert await cache.load(T, "default") is None
    assert await cache.load(T, "kept") is not None


async def test_a_write_of_another_replica_is_seen_at_once_and_unchanged_copies_are_not_reread(
    inner: Counting,
) -> None:
    cache = CachedStore(inner, size=10, ttl=600)
    await cache.append(T, "s1", [turn("mine")], expected_version=0)
    assert (await cache.load(T, "s1")) is not None
    assert inner.loads == 0  # the version matched: the history was not read again
    await inner.append(T, "s1", [turn("theirs")], expected_version=1)  # another replica
    session = await cache.load(T, "s1")
    assert session is not None and session.messages == [turn("mine"), turn("theirs")]
    assert inner.loads == 1


async def test_without_verify_a_copy_may_lag_until_its_ttl(inner: Counting) -> None:
    cache = CachedStore(inner, size=10, ttl=600, verify=False)
    await cache.append(T, "s1", [turn("mine")], expected_version=0)
    await inner.append(T, "s1", [turn("theirs")], expected_version=1)
    session = await cache.load(T, "s1")
    assert session is not None and session.messages == [turn("mine")]
