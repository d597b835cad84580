"""A store that cannot be reached raises StateUnavailable from every method, URL left out."""

from __future__ import annotations

from typing import Any

import pytest

from claude_proxy.errors import GatewayError
from claude_proxy.sessions import SessionSettings, SessionStore, open_store
from claude_proxy.state import StateUnavailable
from tests.netcut import NetCut
from tests.state.redis_server import StartRedis

T = "tenant-a"
TURN = {"role": "user", "content": "你好"}


def assert_discreet(error: StateUnavailable, url: str) -> None:
    message = str(error)
    assert isinstance(error, GatewayError) and error.status == 503
    for secret in (url, "hunter2", "127.0.0.1", "/nonexistent"):
        assert secret not in message, message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://proxy:hunter2@127.0.0.1:1/sessions",
        "redis://:hunter2@127.0.0.1:1/0",
        "sqlite:////nonexistent/directory/sessions.db",
    ],
)
async def test_opening_an_unreachable_store_fails_without_the_url(url: str) -> None:
    with pytest.raises(StateUnavailable) as caught:
        await open_store(url, SessionSettings(url=url))
    assert_discreet(caught.value, url)


async def assert_every_method_fails(store: SessionStore, url: str) -> None:
    calls: list[Any] = [
        lambda: store.load(T, "s1"),
        lambda: store.append(T, "s1", [TURN], expected_version=1),
        lambda: store.replace(T, "s1", [TURN], expected_version=1),
        lambda: store.delete(T, "s1"),
        lambda: store.list(T),
    ]
    for call in calls:
        with pytest.raises(StateUnavailable) as caught:
            await call()
        assert_discreet(caught.value, url)
    with pytest.raises(StateUnavailable) as caught:
        async with store.lock(T, "s1", wait=0):
            pytest.fail("locked a store that is down")
    assert_discreet(caught.value, url)
    assert await store.healthy() is False
    await store.close()  # never raises, and does not wait long


async def test_every_method_fails_while_redis_is_down(start_redis: StartRedis) -> None:
    server = start_redis()
    settings = SessionSettings(url=server.url, cache_size=0)
    store = await open_store(server.url, settings)
    assert await store.append(T, "s1", [TURN], expected_version=0) == 1
    server.kill()
    await assert_every_method_fails(store, server.url)


async def test_every_method_fails_while_postgres_is_down(postgres_url: str) -> None:
    proxy = NetCut(postgres_url)
    port = (await proxy.start()).rsplit(":", 1)[1]
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    store = await open_store(url, SessionSettings(url=url, cache_size=0))
    try:
        assert await store.append(T, "s1", [TURN], expected_version=0) == 1
    finally:
        await proxy.stop()  # every connection cut, and no new one accepted
    await assert_every_method_fails(store, url)


async def test_a_cached_store_passes_the_outage_on(start_redis: StartRedis) -> None:
    server = start_redis()
    store = await open_store(server.url, SessionSettings(url=server.url, cache_size=10))
    await store.append(T, "s1", [TURN], expected_version=0)
    server.kill()
    with pytest.raises(StateUnavailable):
        await store.append(T, "s1", [TURN], expected_version=1)
    await assert_every_method_fails(store, server.url)
