"""What every response-cache backend promises, run over memory and the real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator

import pytest
import redis

from claude_proxy.response_cache import Entry, ResponseCacheSettings, open_response_cache
from claude_proxy.response_cache.failures import StoreFailures
from claude_proxy.response_cache.memory import ENTRY_OVERHEAD, MemoryResponseCache
from claude_proxy.response_cache.redis import SOCKET_TIMEOUT, RedisResponseCache
from claude_proxy.response_cache.registry import BACKENDS
from claude_proxy.response_cache.settings import SCHEMES
from claude_proxy.state import StateUnavailable
from claude_proxy.state.redis import open_redis
from tests.response_cache.conftest import Clock, MakeCache

SSE = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


async def test_entries_come_back_as_stored_and_apart_by_key(make_cache: MakeCache) -> None:
    cache = await make_cache()
    json_entry = Entry(False, b'{"type":"message","content":[]}')
    stream_entry = Entry(True, SSE * 3)
    assert await cache.put("acme:1", json_entry, 60)
    assert await cache.put("acme:2", stream_entry, 60)
    assert await cache.get("acme:1") == json_entry
    assert await cache.get("acme:2") == stream_entry
    assert await cache.get("other:1") is None
    # A put under a key already held replaces its entry.
    assert await cache.put("acme:1", Entry(False, b"{}"), 60)
    assert await cache.get("acme:1") == Entry(False, b"{}")


async def test_an_entry_over_max_entry_bytes_is_not_kept(make_cache: MakeCache) -> None:
    cache = await make_cache(max_entry_bytes=100, max_bytes=1000)
    assert not await cache.put("k", Entry(False, b"x" * 101), 60)
    assert await cache.get("k") is None
    assert await cache.put("k", Entry(False, b"x" * 100), 60)


async def test_memory_entries_expire_by_the_clock(clock: Clock) -> None:
    cache = MemoryResponseCache(ResponseCacheSettings(), clock=clock)
    await cache.put("short", Entry(False, b"{}"), 5)
    await cache.put("long", Entry(False, b"{}"), 60)
    clock.now += 4.9
    assert await cache.get("short") is not None
    clock.now += 0.1
    assert await cache.get("short") is None
    assert cache.bytes_held == cost(2, "long")  # the expired one is gone, the other held
    clock.now += 55
    assert await cache.get("long") is None
    assert cache.bytes_held == 0


async def test_redis_entries_carry_their_ttl(redis_url: str, key_prefix: str) -> None:
    """Redis expires them by its own clock (not the gateway's): the TTL is what is set."""
    cache = await open_response_cache(redis_url, ResponseCacheSettings(key_prefix=key_prefix))
    try:
        await cache.put("acme:k", Entry(True, SSE), 42.5)
        client = redis.Redis.from_url(redis_url)
        try:
            ttl_ms = client.pttl(key_prefix + "acme:k")
        finally:
            client.close()
        assert cache.bytes_held is None
    finally:
        await cache.close()
    assert 42_000 < ttl_ms <= 42_500


def cost(body_bytes: int, key: str = "k") -> int:
    """What an entry counts for in the memory backend's bytes_held."""
    return body_bytes + len(key) + ENTRY_OVERHEAD


async def test_memory_holds_at_most_max_bytes_dropping_the_least_recently_used(
    clock: Clock,
) -> None:
    each = cost(300)
    cache = MemoryResponseCache(
        ResponseCacheSettings(max_bytes=3 * each + 100, max_entry_bytes=400), clock=clock
    )
    for name in "abc":
        assert await cache.put(name, Entry(False, name.encode() * 300), 60)
    assert cache.bytes_held == 3 * each
    assert await cache.get("a") is not None  # a is now the most recently used
    await cache.put("d", Entry(False, b"d" * 300), 60)  # over: b goes
    assert await cache.get("b") is None
    assert [await cache.get(name) is not None for name in "acd"] == [True, True, True]
    assert cache.bytes_held == 3 * each and len(cache) == 3
    await cache.put("e", Entry(False, b"e" * 400), 60)  # over: a, now the coldest, goes
    assert [await cache.get(name) is not None for name in "acde"] == [False, True, True, True]
    assert cache.bytes_held == 2 * each + cost(400)


async def test_expired_entries_make_room_before_live_ones_wherever_they_sit(
    clock: Clock,
) -> None:
    """Tenants with different TTLs: the coldest entry is live, two after it have expired."""
    cache = MemoryResponseCache(
        ResponseCacheSettings(max_bytes=3 * cost(100, "a:live"), max_entry_bytes=100),
        clock=clock,
    )
    await cache.put("a:live", Entry(False, b"a" * 100), 3600)
    await cache.put("b:xxxx", Entry(False, b"x" * 100), 5)
    await cache.put("b:yyyy", Entry(False, b"y" * 100), 5)
    clock.now += 10
    await cache.put("b:zzzz", Entry(False, b"z" * 100), 5)
    assert await cache.get("a:live") is not None
    assert len(cache) == 2 and cache.bytes_held == 2 * cost(100, "a:live")


async def test_many_short_answers_take_about_max_bytes_of_memory() -> None:
    """bytes_held counts what holding an entry costs, not only its answer's bytes."""
    max_bytes = 2_000_000
    cache = MemoryResponseCache(ResponseCacheSettings(max_bytes=max_bytes, max_entry_bytes=4096))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(12_000):  # short JSON answers under 64-character digests
            key = f"tenant:{hashlib.sha256(str(number).encode()).hexdigest()}"
            await cache.put(key, Entry(False, b"x" * (150 + number % 100)), 600)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.bytes_held <= max_bytes
    assert used < 1.2 * max_bytes, f"{used / max_bytes:.2f}x max_bytes"


async def test_a_redis_that_does_not_answer_is_unavailable_at_start() -> None:
    with pytest.raises(StateUnavailable):
        await open_response_cache("redis://127.0.0.1:1/0", ResponseCacheSettings())


def test_every_scheme_has_a_backend() -> None:
    assert set(BACKENDS) == SCHEMES


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A TCP server that accepts connections, reads nothing and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    for writer in held:
        writer.transport.abort()
    server.close()


async def test_a_redis_that_never_answers_costs_one_lookup_deadline_then_nothing(
    silent_url: str,
) -> None:
    client = open_redis(silent_url, socket_timeout=SOCKET_TIMEOUT, decode_responses=False)
    cache = RedisResponseCache(ResponseCacheSettings(lookup_timeout=0.1), client)

    async def lookup() -> float:
        started = time.perf_counter()
        with pytest.raises(StateUnavailable):
            await cache.get("acme:k")
        return time.perf_counter() - started

    try:
        assert 0.09 < await lookup() < 0.5  # the deadline, not the 1 s socket timeout
        # Flagged: none of these waits for the deadline (each would take 0.1 s at least).
        waits = await asyncio.gather(*(lookup() for _ in range(200)))
        assert max(waits) < 0.09
        started = time.perf_counter()
        with pytest.raises(StateUnavailable):
            await cache.put("acme:k", Entry(False, b"{}"), 60)  # passed by as well
        assert time.perf_counter() - started < 0.09
    finally:
        await cache.close()


def test_store_failures_are_logged_as_a_count_at_most_once_a_minute(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    failures = StoreFailures(logging.getLogger("test.failures"), clock=clock)
    refused = StateUnavailable("writing")
    refused.__cause__ = redis.exceptions.ReadOnlyError("You can't write against a replica.")
    failures.failed(refused)
    for _ in range(30):
        clock.now += 1
        failures.failed(refused)
    clock.now += 31
    failures.failed(refused)
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "response cache: 1 store(s) failed",
        "response cache: 31 store(s) failed in the 61 s since the last report",
    ]
    assert "ReadOnlyError: You can't write" in caplog.records[0].getMessage()
